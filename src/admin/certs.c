/* certs: what the admin API says of ACME's certificates (docs/acme.md): GET
 * /api/certificates, POST /api/certificates/NAME/renew, the acme section of /api/health and
 * the detour_acme_* metrics. */
#include "admin/internal.h"

static struct dt_server *server_of(struct admin *a)
{
    pthread_mutex_lock(&a->live.mu);
    struct dt_server *srv = a->live.srv;
    pthread_mutex_unlock(&a->live.mu);
    return srv;
}

static void cert_json(void *ctx, const struct dt_acme_status *st)
{
    json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:s?,s:o,s:I}", "name", st->name, "status", st->state,
                          "not_before", dt_admin_time_json(st->not_before), "not_after",
                          dt_admin_time_json(st->not_after), "issuer",
                          st->issuer[0] ? st->issuer : NULL, "next_try",
                          dt_admin_time_json(st->next_try), "failures", (json_int_t)st->failures);
    json_object_set_new(j, "last_error",
                        st->last_error[0] ? json_string(st->last_error) : json_null());
    json_object_set_new(j, "last_attempt", dt_admin_time_json(st->last_attempt));
    json_array_append_new(ctx, j);
}

/* GET /api/certificates: every name ACME manages; POST /api/certificates/NAME/renew. */
void dt_admin_certificates(struct admin *a, const struct dt_admin_request *req,
                           struct dt_admin_reply *rep)
{
    struct dt_server *srv = server_of(a);
    struct dt_str p = req->path;
    static const char base[] = "/api/certificates";
    json_t *list = json_array();
    if (!srv || !dt_server_acme_each(srv, cert_json, list)) {
        json_decref(list);
        dt_admin_reply_error(rep, 404, NULL,
                             "ACME is off: certificates are managed with --acme-email");
        return;
    }
    if (p.len == sizeof(base) - 1) {
        if (dt_admin_method_in(rep, req->method, "GET"))
            dt_admin_reply_json(rep, 200, json_pack("{s:o}", "certificates", list));
        else
            json_decref(list);
        return;
    }
    json_decref(list);
    static const char renew[] = "/renew";
    size_t n = p.len - sizeof(base); /* the name, after the '/' */
    if (p.len <= sizeof(base) + sizeof(renew) - 1 ||
        memcmp(p.ptr + p.len - (sizeof(renew) - 1), renew, sizeof(renew) - 1) != 0) {
        dt_admin_reply_error(rep, 404, NULL,
                             "no such endpoint: /api/certificates/NAME/renew renews NAME");
        return;
    }
    n -= sizeof(renew) - 1;
    if (!dt_admin_method_in(rep, req->method, "POST"))
        return;
    char name[256];
    if (n == 0 || n >= sizeof(name)) {
        dt_admin_reply_error(rep, 404, NULL, "no such name");
        return;
    }
    memcpy(name, p.ptr + sizeof(base), n);
    name[n] = '\0';
    if (!dt_server_acme_renew(srv, name)) {
        dt_admin_reply_error(rep, 404, NULL, "%s is not a name ACME manages (GET %s lists them)",
                             name, base);
        return;
    }
    dt_admin_reply_json(rep, 202, json_pack("{s:s,s:s}", "name", name, "status", "ordering"));
}

struct acme_health {
    size_t names, valid, failing;
    json_t *errors;
};

static void count_cert(void *ctx, const struct dt_acme_status *st)
{
    struct acme_health *h = ctx;
    h->names++;
    if (!strcmp(st->state, "valid"))
        h->valid++;
    if (st->failures) {
        h->failing++;
        json_object_set_new(h->errors, st->name, json_string(st->last_error));
    }
}

void dt_admin_acme_health(struct dt_server *srv, json_t *j)
{
    /* a failing CA never stops the server, but health says so */
    struct acme_health h = {.errors = json_object()};
    if (!dt_server_acme_each(srv, count_cert, &h)) {
        json_decref(h.errors);
        return;
    }
    json_object_set_new(j, "acme",
                        json_pack("{s:s,s:I,s:I,s:I,s:o}", "status", h.failing ? "failing" : "ok",
                                  "names", (json_int_t)h.names, "valid", (json_int_t)h.valid,
                                  "failing", (json_int_t)h.failing, "errors", h.errors));
    if (h.failing)
        json_object_set_new(j, "status", json_string("degraded"));
}

struct acme_metrics {
    struct dt_buf *b;
    time_t now;
    int part; /* 0: failures, 1: days left, 2: last errors */
};

/* A label value: '\\', '"' and line ends escaped (the exposition format's rule). */
static void label_value(struct dt_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            dt_buf_appendf(b, "\\%c", *s);
        else if (*s == '\n')
            dt_buf_appendf(b, "\\n");
        else if ((unsigned char)*s >= 0x20)
            dt_buf_append(b, s, 1);
    }
}

static void acme_metric(void *ctx, const struct dt_acme_status *st)
{
    struct acme_metrics *m = ctx;
    if (m->part == 0)
        dt_buf_appendf(m->b, "detour_acme_failures{name=\"%s\"} %u\n", st->name, st->failures);
    else if (m->part == 1 && st->not_after)
        dt_buf_appendf(m->b, "detour_acme_days_left{name=\"%s\"} %.2f\n", st->name,
                       (double)(st->not_after - m->now) / 86400.0);
    else if (m->part == 2 && st->last_error[0]) {
        dt_buf_appendf(m->b, "detour_acme_last_error{name=\"%s\",error=\"", st->name);
        label_value(m->b, st->last_error);
        dt_buf_appendf(m->b, "\"} 1\n");
    }
}

void dt_admin_acme_metrics(struct dt_buf *b, struct dt_server *srv, time_t now)
{
    uint64_t ok, failed;
    if (dt_server_acme_counts(srv, &ok, &failed)) {
        dt_buf_appendf(b,
                       "# HELP detour_acme_orders_total ACME orders since the start, by result.\n"
                       "# TYPE detour_acme_orders_total counter\n"
                       "detour_acme_orders_total{result=\"ok\"} %llu\n"
                       "detour_acme_orders_total{result=\"failed\"} %llu\n"
                       "# HELP detour_acme_failures Orders failed in a row, by name (0: its "
                       "certificate is fine).\n"
                       "# TYPE detour_acme_failures gauge\n",
                       (unsigned long long)ok, (unsigned long long)failed);
        struct acme_metrics am = {b, now, 0};
        dt_server_acme_each(srv, acme_metric, &am);
        dt_buf_appendf(b, "# HELP detour_acme_days_left Days until a name's certificate "
                          "expires.\n"
                          "# TYPE detour_acme_days_left gauge\n");
        am.part = 1;
        dt_server_acme_each(srv, acme_metric, &am);
        dt_buf_appendf(b, "# HELP detour_acme_last_error The last failed order's error, by "
                          "name (while the name fails).\n"
                          "# TYPE detour_acme_last_error gauge\n");
        am.part = 2;
        dt_server_acme_each(srv, acme_metric, &am);
    }
}

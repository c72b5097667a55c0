/* fuzz_admin: any bytes as the content of each admin API request that reads one (POST
 * /api/rules, PUT and PATCH /api/rules/1, POST /api/rollback, POST /api/import in each
 * format), as dry runs through the API's own handler against a store with a few rules: the
 * JSON reader, a rule read from JSON and checked, the import converters and the write
 * pipeline up to the commit. Every answer is 200, 201 or a 4xx (never a 5xx) with a JSON
 * object (an "error" string in a 4xx), header lines without stray CR or LF, and the store
 * as it was. The first byte picks the request. */
#include "admin/api.c"

#include <stdlib.h>

static struct admin *adm;
static int64_t version0, count0;

static void setup(void)
{
    static struct dt_admin_options o;
    static struct dt_server_config cfg;
    struct dt_buf err;
    dt_buf_init(&err);
    dt_admin_options_init(&o);
    o.db_path = ":memory:";
    cfg.workers = 1;
    adm = dt_xcalloc(1, sizeof(*adm));
    atomic_init(&adm->settling, false);
    adm->old_temporary = -1;
    adm->opt = &o;
    adm->cfg = &cfg;
    dt_admin_throttle_init(&adm->throttle, 0);
    snprintf(adm->token, sizeof(adm->token), "fuzz-token-0123456789");
    adm->store = dt_store_open(":memory:", dt_rule_source_host, &err);
    if (!adm->store)
        abort();
    /* a few rules in three versions, for PATCH, PUT, rollback and the imports to meet */
    static const struct dt_store_rule rules[] = {
        {.source = "/a", .target = "/b", .status = 307, .options = "", .note = ""},
        {.source = "example.com/old",
         .target = "https://example.com/new",
         .status = 301,
         .options = "query=drop cache=60",
         .note = "a note"},
        {.source = "/promo/*",
         .target = "/sale/:splat",
         .status = 302,
         .options = "promote-after=90d",
         .note = ""},
    };
    for (size_t i = 0; i < DT_ARRAY_LEN(rules); i++) {
        int64_t id, v;
        if (dt_store_begin(adm->store, 1795000000 + (int64_t)i, "fuzz", "", &err) != 0 ||
            dt_store_add(adm->store, &rules[i], &id, &err) != 0 ||
            dt_store_commit(adm->store, &v, &err) != 0)
            abort();
    }
    if (dt_live_init(&adm->live, &cfg, adm->store, ":memory:", dt_live_load_files(&cfg), &err))
        abort();
    adm->store_count = dt_store_count(adm->store);
    version0 = dt_store_version(adm->store);
    count0 = adm->store_count;
    dt_buf_dispose(&err);
}

/* Header lines are "Name: value\r\n", nothing else. */
static void check_headers(const struct dt_buf *h)
{
    const char *p = h->ptr ? h->ptr : "", *end = p + h->len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || eol == p || eol[-1] != '\r' || !memchr(p, ':', (size_t)(eol - p)))
            abort();
        for (const char *q = p; q < eol - 1; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                abort();
        p = eol + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        const char *method, *path, *query;
    } requests[] = {
        {"POST", "/api/rules", "dry_run=true"},
        {"PUT", "/api/rules/1", "dry_run=true"},
        {"PATCH", "/api/rules/2", "dry_run=true"},
        {"POST", "/api/rollback", "dry_run=true"},
        {"POST", "/api/import", "dry_run=true"},
        {"POST", "/api/import", "dry_run=true&format=csv"},
        {"POST", "/api/import", "dry_run=true&format=nginx&mode=replace"},
        {"POST", "/api/import", "dry_run=true&format=netlify&status=301"},
    };
    if (!adm)
        setup();
    if (size < 1)
        return 0;
    const __typeof__(requests[0]) *r = &requests[data[0] % DT_ARRAY_LEN(requests)];
    char target[128];
    snprintf(target, sizeof(target), "%s?%s", r->path, r->query);
    static const char auth[] = "Bearer fuzz-token-0123456789";
    struct dt_admin_request req = {
        .method = dt_str_make(r->method, strlen(r->method)),
        .target = dt_str_make(target, strlen(target)),
        .path = dt_str_make(r->path, strlen(r->path)),
        .query = dt_str_make(r->query, strlen(r->query)),
        .authorization = dt_str_make(auth, sizeof(auth) - 1),
        .body = dt_str_make((const char *)data + 1, size - 1),
        .now = 1795000100,
        .now_ms = 1000,
        .peer = "127.0.0.1",
    };
    struct dt_admin_reply rep = {.status = 0};
    dt_buf_init(&rep.headers);
    dt_buf_init(&rep.body);
    handle(adm, &req, &rep);

    if (!(rep.status == 200 || rep.status == 201 || (rep.status >= 400 && rep.status < 500)))
        abort();
    check_headers(&rep.headers);
    json_t *j = json_loadb(rep.body.ptr ? rep.body.ptr : "", rep.body.len, 0, NULL);
    if (!json_is_object(j))
        abort();
    if (rep.status >= 400 && !json_is_string(json_object_get(j, "error")))
        abort();
    if (rep.status < 400 && !json_is_true(json_object_get(j, "dry_run")))
        abort();
    json_decref(j);
    /* a dry run writes nothing */
    if (dt_store_version(adm->store) != version0 || dt_store_count(adm->store) != count0)
        abort();
    dt_buf_dispose(&rep.headers);
    dt_buf_dispose(&rep.body);
    return 0;
}

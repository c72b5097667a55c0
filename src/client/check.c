/* check: drives many redirect chains (fetch.c's steps) over one libcurl multi handle, spaces
 * the requests to each host by a rate, and judges each finished chain against what was
 * expected of it. The API is check.h. */
#include "client/check.h"
#include "client/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- judging ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int severity;
} kinds[DT_CHECK_NKINDS] = {
    [DT_CHECK_WRONG_TARGET] = {"wrong-target", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_WRONG_STATUS] = {"wrong-status", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_TEMPORARY] = {"temporary", DT_CHECK_WARNING},
    [DT_CHECK_NO_REDIRECT] = {"no-redirect", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_CHAIN] = {"chain", DT_CHECK_WARNING},
    [DT_CHECK_LOOP] = {"loop", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_TOO_MANY] = {"too-many-redirects", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_DOWNGRADE] = {"downgrade", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_NO_HSTS] = {"no-hsts", DT_CHECK_WARNING},
    [DT_CHECK_BROKEN] = {"broken-target", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_REFUSED] = {"refused", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_DNS] = {"error-dns", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_CONNECT] = {"error-connect", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_TLS] = {"error-tls", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_TIMEOUT] = {"error-timeout", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_HTTP] = {"error-http", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_INVALID] = {"error-url", DT_CHECK_ERROR_LEVEL},
    [DT_CHECK_ERROR] = {"error-other", DT_CHECK_ERROR_LEVEL},
};

const char *dt_check_kind_name(enum dt_check_kind k)
{
    return (unsigned)k < DT_CHECK_NKINDS ? kinds[k].name : "unknown";
}

int dt_check_kind_severity(enum dt_check_kind k)
{
    return (unsigned)k < DT_CHECK_NKINDS ? kinds[k].severity : DT_CHECK_ERROR_LEVEL;
}

static void problem(struct dt_check_result *r, enum dt_check_kind k, const char *fmt, ...)
    DT_PRINTF(3, 4);
static void problem(struct dt_check_result *r, enum dt_check_kind k, const char *fmt, ...)
{
    if (r->nproblems == DT_CHECK_MAX_PROBLEMS)
        return;
    struct dt_check_problem *p = &r->problems[r->nproblems++];
    p->kind = k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
    va_end(ap);
    if (kinds[k].severity > r->severity)
        r->severity = kinds[k].severity;
}

static bool permanent(int status)
{
    return status == 301 || status == 308;
}

/* The error kind of a failed transfer, by its CURLcode. */
static enum dt_check_kind error_kind(int code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return DT_CHECK_DNS;
    case CURLE_COULDNT_CONNECT:
        return DT_CHECK_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return DT_CHECK_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
        return DT_CHECK_TLS;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return DT_CHECK_HTTP;
    case CURLE_URL_MALFORMAT:
        return DT_CHECK_INVALID;
    default:
        return DT_CHECK_ERROR;
    }
}

/* The port a URL's scheme implies, or the one it names. */
static struct dt_str effective_port(const struct dt_url *u)
{
    if (u->has_port && u->port.len)
        return u->port;
    return dt_str_ieq(u->scheme, "https") ? DT_STR("443") : DT_STR("80");
}

bool dt_check_same_url(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    struct dt_url x, y;
    if (dt_url_parse(dt_str_make(a, strlen(a)), &x, NULL) != 0 ||
        dt_url_parse(dt_str_make(b, strlen(b)), &y, NULL) != 0)
        return !strcmp(a, b);
    struct dt_str xp = x.path.len ? x.path : DT_STR("/");
    struct dt_str yp = y.path.len ? y.path : DT_STR("/");
    return x.scheme.len == y.scheme.len && !strncasecmp(x.scheme.ptr, y.scheme.ptr, x.scheme.len) &&
           x.host.len == y.host.len && !strncasecmp(x.host.ptr, y.host.ptr, x.host.len) &&
           dt_str_eq(effective_port(&x), effective_port(&y)) && dt_str_eq(xp, yp) &&
           dt_str_eq(x.query, y.query) &&
           (!y.has_fragment || (x.has_fragment && dt_str_eq(x.fragment, y.fragment)));
}

void dt_check_judge(const struct dt_check_item *it, struct dt_check_result *r)
{
    const struct dt_client_result *c = &r->chain;
    r->nproblems = 0;
    r->severity = 0;
    const struct dt_client_hop *first = c->nhops ? &c->hops[0] : NULL;
    const struct dt_client_hop *last = c->nhops ? &c->hops[c->nhops - 1] : NULL;
    switch (r->rc) {
    case 0:
        break;
    case DT_CLIENT_ETRANSFER:
        problem(r, error_kind(r->curl_code), "%s", c->error);
        break;
    case DT_CLIENT_ELOOP:
        problem(r, DT_CHECK_LOOP, "%s", c->error);
        break;
    case DT_CLIENT_ETOOMANY:
        problem(r, DT_CHECK_TOO_MANY, "%s", c->error);
        break;
    case DT_CLIENT_EREFUSED:
        problem(r, DT_CHECK_REFUSED, "%s", c->error);
        break;
    case DT_CLIENT_EINVAL:
        problem(r, DT_CHECK_INVALID, "%s", c->error);
        break;
    default:
        problem(r, DT_CHECK_ERROR, "%s", c->error);
        break;
    }
    unsigned redirects = 0;
    const struct dt_client_hop *bare = NULL;
    for (size_t i = 0; i < c->nhops; i++) {
        const struct dt_client_hop *h = &c->hops[i];
        if (h->followed)
            redirects++;
        if (h->followed && dt_client_scheme_is(h->url, "https") &&
            dt_client_scheme_is(h->next_url, "http"))
            problem(r, DT_CHECK_DOWNGRADE, "%d from %s leads to plain http: %s", h->status, h->url,
                    h->next_url);
        /* RFC 6797 7.1: an HSTS host sends the field in every answer over https */
        if (!bare && h->kind == DT_HOP_NETWORK && h->status &&
            dt_client_scheme_is(h->url, "https") && !h->hsts)
            bare = h;
    }
    if (bare)
        problem(r, DT_CHECK_NO_HSTS, "%s answered %d over https without Strict-Transport-Security",
                bare->url, bare->status);
    if (it->expect && first && r->rc != DT_CLIENT_ETRANSFER) {
        if (!first->followed && !(first->status >= 300 && first->status < 400 && first->location)) {
            problem(r, DT_CHECK_NO_REDIRECT, "answered %d, not a redirect to %s", first->status,
                    it->expect);
        } else if (first->next_url && !dt_check_same_url(first->next_url, it->expect)) {
            if (c->url && dt_check_same_url(c->url, it->expect))
                ; /* it gets there, through more hops: a chain, reported below */
            else
                problem(r, DT_CHECK_WRONG_TARGET, "redirects to %s, expected %s", first->next_url,
                        it->expect);
        }
    }
    if (it->expect_status && first && first->status >= 300 && first->status < 400 &&
        first->status != it->expect_status) {
        problem(r, DT_CHECK_WRONG_STATUS, "answered %d %s, expected %d %s", first->status,
                dt_client_reason(first->status), it->expect_status,
                dt_client_reason(it->expect_status));
        if (permanent(it->expect_status) && !permanent(first->status))
            problem(r, DT_CHECK_TEMPORARY,
                    "a temporary redirect (%d) where the file says permanent (%d): clients "
                    "and search engines keep asking the old URL",
                    first->status, it->expect_status);
    }
    /* a loop or an endless chain is reported as such, not also as a long chain */
    if (redirects > 1 && r->rc != DT_CLIENT_ELOOP && r->rc != DT_CLIENT_ETOOMANY) {
        char path[400];
        size_t o = 0;
        for (size_t i = 0; i < c->nhops && o < sizeof(path); i++) {
            const struct dt_client_hop *h = &c->hops[i];
            int n = snprintf(path + o, sizeof(path) - o, "%s%s", i ? " -> " : "", h->url);
            if (n < 0)
                break;
            o += (size_t)n;
        }
        problem(r, DT_CHECK_CHAIN, "%u redirects before the final answer: %s", redirects, path);
    }
    if (r->rc == 0 && last && c->status >= 400)
        problem(r, DT_CHECK_BROKEN, "%s answers %d %s", c->url ? c->url : last->url, c->status,
                dt_client_reason(c->status));
}

/* ---- the rate per host ------------------------------------------------------------------- */

uint64_t dt_check_slot(uint64_t *next, uint64_t now_us, uint64_t interval_us)
{
    uint64_t at = *next > now_us ? *next : now_us;
    *next = at + interval_us;
    return at;
}

/* The next free slot of each host (a uint64_t each), by name. Hosts whose slot has passed
 * constrain nothing and are dropped now and then, so the map holds only hosts asked lately. */
struct hosts {
    struct dt_strmap map;
    size_t pruned_at; /* the map's size after the last pruning */
};

static bool passed(void *ctx, void *value)
{
    bool gone = *(uint64_t *)value <= *(const uint64_t *)ctx;
    if (gone)
        free(value);
    return gone;
}

/* The slot of the request to url. */
static uint64_t hosts_slot(struct hosts *t, const char *url, uint64_t now, uint64_t interval)
{
    char name[256];
    if (!dt_client_url_host(url, name, sizeof(name)))
        name[0] = '\0';
    if (t->map.n >= 2 * t->pruned_at + 1024) {
        dt_strmap_prune(&t->map, passed, &now);
        t->pruned_at = t->map.n;
    }
    void **slot = dt_strmap_get(&t->map, name, true);
    if (!*slot)
        *slot = dt_xcalloc(1, sizeof(uint64_t));
    return dt_check_slot(*slot, now, interval);
}

/* ---- the engine -------------------------------------------------------------------------- */

enum slot_state { FREE, WAITING, RUNNING };

struct slot {
    enum slot_state state;
    CURL *h;
    struct dt_check_item *item;
    struct chain chain;
    struct dt_check_result result;
    struct dt_client_request req;
    bool configured;  /* h has the policy's options */
    uint64_t wake;    /* WAITING: when its request may go */
    uint64_t started; /* µs: the chain's first request */
};

struct engine {
    const struct dt_check_options *o;
    struct dt_client_policy policy;
    CURLM *multi;
    struct slot *slots;
    unsigned nslots, busy;
    struct hosts hosts;
    uint64_t interval; /* µs between two requests to one host; 0: no limit */
    bool more;         /* next() may give more */
    int rc;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void finish(struct engine *e, struct slot *s);

/* The chain of s has a request to send (or has ended): wait for its host's slot, or send. */
static void advance(struct engine *e, struct slot *s, int more)
{
    if (!more) {
        finish(e, s);
        return;
    }
    uint64_t now = now_us();
    s->wake = now;
    if (e->interval)
        s->wake = hosts_slot(&e->hosts, s->chain.xr.url, now, e->interval);
    s->state = WAITING;
}

static void send_waiting(struct engine *e, uint64_t now)
{
    for (unsigned i = 0; i < e->nslots; i++) {
        struct slot *s = &e->slots[i];
        if (s->state != WAITING || s->wake > now)
            continue;
        /* the policy's options once a handle; a request's own before each */
        if (!s->configured) {
            dt_xfer_configure(s->h, &e->policy, &s->chain.x);
            curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
            s->configured = true;
        }
        dt_xfer_request(s->h, &s->chain.xr, &s->chain.x);
        if (curl_multi_add_handle(e->multi, s->h) != CURLM_OK) {
            s->chain.rc = DT_CLIENT_ENOMEM;
            finish(e, s);
            continue;
        }
        s->state = RUNNING;
    }
}

/* Starts the chain of s's item with method. */
static void begin(struct engine *e, struct slot *s, const char *method)
{
    s->req = (struct dt_client_request){.method = method, .url = s->item->url};
    s->result.method = method;
    s->started = now_us();
    int rc = dt_chain_begin(&s->chain, &s->req, &e->policy, NULL, NULL, &s->result.chain);
    if (rc) {
        s->chain.rc = rc;
        finish(e, s);
        return;
    }
    advance(e, s, dt_chain_next(&s->chain));
}

static void finish(struct engine *e, struct slot *s)
{
    struct dt_check_result *r = &s->result;
    r->rc = s->chain.rc;
    r->curl_code = r->rc == DT_CLIENT_ETRANSFER ? s->chain.x.curl_code : 0;
    dt_chain_dispose(&s->chain);
    /* A server that does not do HEAD (405, 501) is asked again with GET, as link checkers
     * do: the redirect is what is checked, not the method. */
    if (!e->o->get && !strcmp(r->method, "HEAD") && r->rc == 0 &&
        (r->chain.status == 405 || r->chain.status == 501)) {
        dt_client_result_free(&r->chain);
        begin(e, s, "GET");
        return;
    }
    r->time_us = (int64_t)(now_us() - s->started);
    dt_check_judge(s->item, r);
    e->o->done(e->o->ud, s->item, r);
    dt_client_result_free(&r->chain);
    memset(r, 0, sizeof(*r));
    s->item = NULL;
    s->state = FREE;
    e->busy--;
}

/* Gives free slots the next items. */
static void fill(struct engine *e)
{
    for (unsigned i = 0; i < e->nslots && e->more; i++) {
        struct slot *s = &e->slots[i];
        if (s->state != FREE)
            continue;
        struct dt_check_item *item = NULL;
        int rc = e->o->next(e->o->ud, &item);
        if (rc <= 0) {
            e->more = false;
            if (rc < 0)
                e->rc = rc;
            break;
        }
        /* a handle for the slot when it is first used: --concurrency 10000 for a short list
         * makes no more than the list needs */
        if (!s->h && !(s->h = curl_easy_init())) {
            e->rc = DT_CLIENT_ENOMEM;
            e->more = false;
            break; /* the item is lost with the run, which fails */
        }
        s->item = item;
        s->state = WAITING; /* taken, until begin() says more */
        e->busy++;
        begin(e, s, e->o->get ? "GET" : "HEAD");
    }
}

static void collect(struct engine *e)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct slot *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        CURLcode code = m->data.result;
        curl_multi_remove_handle(e->multi, m->easy_handle);
        int xrc = dt_xfer_finish(s->h, code, &s->chain.x);
        s->state = WAITING;
        int more = dt_chain_answered(&s->chain, xrc);
        advance(e, s, more ? dt_chain_next(&s->chain) : 0);
    }
}

int dt_check_run(const struct dt_check_options *o)
{
    dt_client_global_init();
    struct engine e = {.o = o, .more = true};
    e.policy = *o->policy;
    e.policy.hsts = NULL;
    e.policy.cache = NULL;
    e.policy.allow_downgrade = true; /* followed, to be reported */
    dt_client_policy_fill(&e.policy);
    e.nslots = o->concurrency ? o->concurrency : 1;
    e.interval = o->rate > 0 ? (uint64_t)(1e6 / o->rate) : 0;
    e.slots = calloc(e.nslots, sizeof(*e.slots));
    e.multi = curl_multi_init();
    if (!e.slots || !e.multi) {
        e.rc = DT_CLIENT_ENOMEM;
        goto out;
    }
    curl_multi_setopt(e.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* every slot may keep a connection to its host, and a few spare ones */
    curl_multi_setopt(e.multi, CURLMOPT_MAXCONNECTS, (long)e.nslots + 16);
    /* curl_multi_perform and curl_multi_poll, as curl's own --parallel: measured against
     * the multi_socket interface over epoll (bench/check), this costs less a URL here,
     * since libcurl changes what it watches for each request (an epoll_ctl each time) */
    uint64_t tick = 0;
    for (;;) {
        fill(&e);
        uint64_t now = now_us();
        send_waiting(&e, now);
        if (!e.busy && !e.more)
            break;
        int running;
        curl_multi_perform(e.multi, &running);
        collect(&e);
        now = now_us();
        if (o->tick && now >= tick + 200000) {
            o->tick(o->ud);
            tick = now;
        }
        /* sleep until a socket is ready, a waiting request's slot comes, or the tick; not
         * while a slot is free for an item to come, or nothing is under way */
        uint64_t wake = tick + 200000;
        for (unsigned i = 0; i < e.nslots; i++) {
            if (e.slots[i].state == WAITING && e.slots[i].wake < wake)
                wake = e.slots[i].wake;
            if (e.slots[i].state == FREE && e.more)
                wake = 0;
        }
        if (e.busy && wake > now)
            curl_multi_poll(e.multi, NULL, 0, (int)((wake - now + 999) / 1000), NULL);
    }
    if (o->tick)
        o->tick(o->ud);
out:
    for (unsigned i = 0; e.slots && i < e.nslots; i++) {
        struct slot *s = &e.slots[i];
        if (s->state == RUNNING)
            curl_multi_remove_handle(e.multi, s->h);
        if (s->state != FREE) {
            dt_chain_dispose(&s->chain);
            dt_client_result_free(&s->result.chain);
        }
        if (s->h)
            curl_easy_cleanup(s->h);
    }
    if (e.multi)
        curl_multi_cleanup(e.multi);
    free(e.slots);
    dt_strmap_dispose(&e.hosts.map, free);
    return e.rc;
}

/* check: `detour check`, many live redirects verified at once against rule files, redirect
 * lists or lists of URLs, with the user agent's policy (C1-C8), reported as text, JSON, CSV
 * or JUnit. docs/check.md walks through a migration with it. */
#include "cli/check.h"
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "Usage: detour check [OPTIONS] FILE...\n"
    "\n"
    "Checks live redirects in bulk: each URL is requested and its redirects followed by the\n"
    "rules of RFC 9110, as detour get does (HEAD, or GET where HEAD is refused; never an\n"
    "unsafe method), and what happens is judged against what the file expects.\n"
    "\n"
    "FILE (- for standard input) is read as a stream, in any size:\n"
    "  - a detour rule file: each rule is checked with a request it answers (its own path\n"
    "    for an exact rule; for patterns a sample, as detour lint makes) against the\n"
    "    target and status the rules give that request;\n"
    "  - a redirect list in a format detour import reads, by the file's name: CSV\n"
    "    (source,target[,status], Cloudflare's bulk redirects), nginx map, Netlify\n"
    "    _redirects;\n"
    "  - a list of URLs, one a line (in a rule file too): followed and reported.\n"
    "\n"
    "Problems: wrong-target, wrong-status (307 where 308 is expected, and the reverse),\n"
    "temporary (a temporary redirect where the file says permanent), no-redirect, chain\n"
    "(more than one redirect), loop, too-many-redirects, downgrade (https to http),\n"
    "no-hsts (https without Strict-Transport-Security), broken-target (a final 4xx or\n"
    "5xx), refused (a Location the policy does not follow), and errors by kind:\n"
    "error-dns, error-connect, error-tls, error-timeout, error-http, error-url.\n"
    "chain, no-hsts and temporary are warnings; the others are errors.\n"
    "\n"
    "Options:\n"
    "      --resolve HOST:PORT:ADDR   reach HOST:PORT at ADDR, as curl's (repeatable): test a\n"
    "                                 new server before DNS points at it\n"
    "      --connect-to HOST:PORT:HOST2:PORT2  connect to HOST2:PORT2 for HOST:PORT, as\n"
    "                                 curl's (repeatable)\n"
    "      --base URL                 scheme://host[:port] where rules for any host are\n"
    "                                 checked (and the scheme of sources without one;\n"
    "                                 default https)\n"
    "      --concurrency N            URLs under way at once (default 64, up to 10000)\n"
    "      --rate N                   at most N requests a second to each host (default: no\n"
    "                                 limit), spaced evenly\n"
    "      --timeout TIME             give up on a request after TIME (default 10s; 500ms,\n"
    "                                 30s, 2m)\n"
    "      --max-redirs N             follow at most N redirects (default 10)\n"
    "  -X, --request HEAD|GET         the method (default HEAD, and GET where HEAD gets 405\n"
    "                                 or 501)\n"
    "      --format text|json|csv|junit  the report (default text)\n"
    "      --input-format F           read every FILE as F: detour, csv, nginx, netlify\n"
    "                                 (default: by each file's name)\n"
    "  -o, --output FILE              write the report to FILE (default standard output)\n"
    "      --fail-on warning|error    exit 1 when a problem this grave is found (default\n"
    "                                 error)\n"
    "  -v, --verbose                  text: every URL, not only those with problems, and\n"
    "                                 their hops\n"
    "  -q, --quiet                    no progress line on a terminal\n"
    "      --cacert FILE              CA certificates for https\n"
    "  -k, --insecure                 do not verify https certificates\n"
    "      --http1.1                  speak HTTP/1.1 only (default: HTTP/2 where offered)\n"
    "      --http2-prior-knowledge    HTTP/2 on plain http too, without asking: every URL of\n"
    "                                 a host over one connection\n"
    "  -h, --help                     show this help\n"
    "\n"
    "Exit status: 0 when no problem is at or above --fail-on, 1 otherwise, 2 for bad\n"
    "usage or a bad input line (reported as FILE:LINE:COL).\n";

enum format { FMT_TEXT, FMT_JSON, FMT_CSV, FMT_JUNIT };

enum {
    O_RESOLVE = 256,
    O_CONNECT_TO,
    O_BASE,
    O_CONCURRENCY,
    O_RATE,
    O_TIMEOUT,
    O_MAX_REDIRS,
    O_FORMAT,
    O_INPUT_FORMAT,
    O_FAIL_ON,
    O_CACERT,
    O_HTTP11,
    O_HTTP2_PRIOR,
};

static const struct option options[] = {
    {"resolve", required_argument, NULL, O_RESOLVE},
    {"connect-to", required_argument, NULL, O_CONNECT_TO},
    {"base", required_argument, NULL, O_BASE},
    {"concurrency", required_argument, NULL, O_CONCURRENCY},
    {"rate", required_argument, NULL, O_RATE},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"max-redirs", required_argument, NULL, O_MAX_REDIRS},
    {"request", required_argument, NULL, 'X'},
    {"format", required_argument, NULL, O_FORMAT},
    {"input-format", required_argument, NULL, O_INPUT_FORMAT},
    {"output", required_argument, NULL, 'o'},
    {"fail-on", required_argument, NULL, O_FAIL_ON},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"cacert", required_argument, NULL, O_CACERT},
    {"insecure", no_argument, NULL, 'k'},
    {"http1.1", no_argument, NULL, O_HTTP11},
    {"http2-prior-knowledge", no_argument, NULL, O_HTTP2_PRIOR},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define MAX_HOSTS 100000 /* hosts timed one by one for the summary; the others together */
#define SLOWEST 5

struct host_time {
    uint64_t requests, total_us, max_us;
};

struct run {
    enum format format;
    bool verbose, progress;
    int fail_on;
    FILE *out;
    FILE *cases; /* junit: the test cases, until their counts are known */
    struct check_input *in;
    uint64_t estimate;
    uint64_t started_ms;
    /* what was seen */
    uint64_t done, ok, warnings, errors, failing;
    uint64_t junit_errors; /* failing results whose failing problems are all errors-* */
    uint64_t kinds[DT_CHECK_NKINDS];
    struct dt_strmap hosts;
    struct host_time other_hosts;
    bool first; /* json: no comma yet */
    int width;  /* of the progress line shown */
};

/* ---- the reports ------------------------------------------------------------------------- */

static const char *severity_name(int s)
{
    return s >= DT_CHECK_ERROR_LEVEL ? "error" : s == DT_CHECK_WARNING ? "warning" : "ok";
}

static void text_result(struct run *r, const struct check_entry *e, const struct dt_check_result *c)
{
    if (!c->severity && !r->verbose)
        return;
    const struct dt_client_result *ch = &c->chain;
    fprintf(r->out, "%s:%u: %s", e->file, e->line, e->url);
    if (ch->status)
        fprintf(r->out, " -> %d %s", ch->status, ch->url ? ch->url : "");
    fprintf(r->out, " (%s, %zu hop%s, %.1f ms)\n", severity_name(c->severity), ch->nhops,
            ch->nhops == 1 ? "" : "s", (double)c->time_us / 1000);
    for (unsigned i = 0; i < c->nproblems; i++)
        fprintf(r->out, "  %s %s: %s\n", severity_name(dt_check_kind_severity(c->problems[i].kind)),
                dt_check_kind_name(c->problems[i].kind), c->problems[i].message);
    if (!r->verbose)
        return;
    for (size_t i = 0; i < ch->nhops; i++) {
        const struct dt_client_hop *h = &ch->hops[i];
        fprintf(r->out, "    %d %s %s", h->status, h->method, h->url);
        if (h->next_url)
            fprintf(r->out, " -> %s", h->next_url);
        if (h->note)
            fprintf(r->out, " (%s)", h->note);
        fputc('\n', r->out);
    }
}

static json_t *json_result(const struct check_entry *e, const struct dt_check_result *c)
{
    const struct dt_client_result *ch = &c->chain;
    json_t *problems = json_array();
    for (unsigned i = 0; i < c->nproblems; i++)
        json_array_append_new(problems,
                              json_pack("{s:s, s:s, s:s}", "kind",
                                        dt_check_kind_name(c->problems[i].kind), "severity",
                                        severity_name(dt_check_kind_severity(c->problems[i].kind)),
                                        "message", c->problems[i].message));
    json_t *hops = json_array();
    for (size_t i = 0; i < ch->nhops; i++) {
        const struct dt_client_hop *h = &ch->hops[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:b, s:f}", "method", h->method, "url", h->url,
                              "status", h->status, "protocol", h->protocol, "hsts", h->hsts,
                              "time_ms", (double)h->time_us / 1000);
        if (h->location)
            json_object_set_new(o, "location", json_string(h->location));
        if (h->next_url)
            json_object_set_new(o, "next_url", json_string(h->next_url));
        json_array_append_new(hops, o);
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:f, s:o, s:o}", "file", e->file, "line",
                          (json_int_t)e->line, "url", e->url, "method", c->method, "severity",
                          severity_name(c->severity), "time_ms", (double)c->time_us / 1000,
                          "problems", problems, "hops", hops);
    json_object_set_new(o, "expected_target", e->expect ? json_string(e->expect) : json_null());
    json_object_set_new(o, "expected_status",
                        e->item.expect_status ? json_integer(e->item.expect_status) : json_null());
    json_object_set_new(o, "status", ch->status ? json_integer(ch->status) : json_null());
    json_object_set_new(o, "final_url", ch->url ? json_string(ch->url) : json_null());
    json_object_set_new(o, "error", c->rc ? json_string(ch->error) : json_null());
    return o;
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s, bool last)
{
    if (s && strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else if (s) {
        fputs(s, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

static const char csv_header[] = "file,line,url,expected_target,expected_status,status,"
                                 "final_url,redirects,first_status,first_target,severity,"
                                 "problems,message,time_ms\r\n";

static void csv_result(struct run *r, const struct check_entry *e, const struct dt_check_result *c)
{
    const struct dt_client_result *ch = &c->chain;
    char num[32];
    FILE *f = r->out;
    csv_field(f, e->file, false);
    snprintf(num, sizeof(num), "%u", e->line);
    csv_field(f, num, false);
    csv_field(f, e->url, false);
    csv_field(f, e->expect, false);
    snprintf(num, sizeof(num), "%d", e->item.expect_status);
    csv_field(f, e->item.expect_status ? num : "", false);
    snprintf(num, sizeof(num), "%d", ch->status);
    csv_field(f, ch->status ? num : "", false);
    csv_field(f, ch->url, false);
    unsigned redirects = 0;
    for (size_t i = 0; i < ch->nhops; i++)
        redirects += ch->hops[i].followed;
    snprintf(num, sizeof(num), "%u", redirects);
    csv_field(f, num, false);
    snprintf(num, sizeof(num), "%d", ch->nhops ? ch->hops[0].status : 0);
    csv_field(f, ch->nhops && ch->hops[0].status ? num : "", false);
    csv_field(f, ch->nhops ? ch->hops[0].next_url : NULL, false);
    csv_field(f, severity_name(c->severity), false);
    struct dt_buf kinds, messages;
    dt_buf_init(&kinds);
    dt_buf_init(&messages);
    for (unsigned i = 0; i < c->nproblems; i++) {
        dt_buf_appendf(&kinds, "%s%s", i ? ";" : "", dt_check_kind_name(c->problems[i].kind));
        dt_buf_appendf(&messages, "%s%s", i ? "; " : "", c->problems[i].message);
    }
    dt_buf_terminate(&kinds);
    dt_buf_terminate(&messages);
    csv_field(f, kinds.ptr ? kinds.ptr : "", false);
    csv_field(f, messages.ptr ? messages.ptr : "", false);
    dt_buf_dispose(&kinds);
    dt_buf_dispose(&messages);
    snprintf(num, sizeof(num), "%.1f", (double)c->time_us / 1000);
    csv_field(f, num, true);
}

/* XML text: & < > " escaped, and bytes XML 1.0 cannot hold (controls but tab, LF, CR)
 * written as U+FFFD. */
static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '&')
            fputs("&amp;", f);
        else if (ch == '<')
            fputs("&lt;", f);
        else if (ch == '>')
            fputs("&gt;", f);
        else if (ch == '"')
            fputs("&quot;", f);
        else if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
            fputs("\xEF\xBF\xBD", f);
        else
            fputc(ch, f);
    }
}

static void junit_result(struct run *r, const struct check_entry *e,
                         const struct dt_check_result *c)
{
    FILE *f = r->cases;
    fputs("    <testcase classname=\"", f);
    xml_text(f, e->file);
    fprintf(f, ":%u\" name=\"", e->line);
    xml_text(f, e->url);
    fprintf(f, "\" time=\"%.3f\"", (double)c->time_us / 1e6);
    if (!c->nproblems) {
        fputs("/>\n", f);
        return;
    }
    fputs(">\n", f);
    /* One <failure> (or <error>: the URL could not be checked) per test case, as JUnit
     * readers expect: named by the first failing problem, every problem in its text; the
     * problems below --fail-on go to <system-out>. */
    const struct dt_check_problem *first = NULL;
    bool all_errors = true;
    struct dt_buf failing, other;
    dt_buf_init(&failing);
    dt_buf_init(&other);
    for (unsigned i = 0; i < c->nproblems; i++) {
        const struct dt_check_problem *p = &c->problems[i];
        int sev = dt_check_kind_severity(p->kind);
        const char *name = dt_check_kind_name(p->kind);
        struct dt_buf *to = sev >= r->fail_on ? &failing : &other;
        dt_buf_appendf(to, "%s %s: %s\n", severity_name(sev), name, p->message);
        if (sev < r->fail_on)
            continue;
        if (!first)
            first = p;
        all_errors &= !strncmp(name, "error-", 6);
    }
    if (first) {
        const char *el = all_errors ? "error" : "failure";
        dt_buf_terminate(&failing);
        fprintf(f, "      <%s type=\"%s\" message=\"", el, dt_check_kind_name(first->kind));
        xml_text(f, first->message);
        fputs("\">", f);
        xml_text(f, failing.ptr);
        fprintf(f, "</%s>\n", el);
    }
    if (other.len) {
        dt_buf_terminate(&other);
        fputs("      <system-out>", f);
        xml_text(f, other.ptr);
        fputs("</system-out>\n", f);
    }
    dt_buf_dispose(&failing);
    dt_buf_dispose(&other);
    fputs("    </testcase>\n", f);
}

/* ---- the run ----------------------------------------------------------------------------- */

static int next_item(void *ud, struct dt_check_item **item)
{
    struct run *r = ud;
    struct check_entry *e;
    int rc = check_input_next(r->in, &e);
    if (rc == 1)
        *item = &e->item;
    return rc;
}

static void time_host(struct run *r, const struct dt_client_result *ch)
{
    for (size_t i = 0; i < ch->nhops; i++) {
        const struct dt_client_hop *h = &ch->hops[i];
        if (h->kind != DT_HOP_NETWORK || !h->time_us)
            continue;
        char host[256];
        if (!dt_client_url_host(h->url, host, sizeof(host)))
            continue;
        void **slot = dt_strmap_get(&r->hosts, host, r->hosts.n < MAX_HOSTS);
        struct host_time *t = slot ? *slot : &r->other_hosts;
        if (slot && !t)
            t = *slot = dt_xcalloc(1, sizeof(*t));
        t->requests++;
        t->total_us += (uint64_t)h->time_us;
        if ((uint64_t)h->time_us > t->max_us)
            t->max_us = (uint64_t)h->time_us;
    }
}

static void done_item(void *ud, struct dt_check_item *item, struct dt_check_result *c)
{
    struct run *r = ud;
    struct check_entry *e = item->ud;
    r->done++;
    if (c->severity >= DT_CHECK_ERROR_LEVEL)
        r->errors++;
    else if (c->severity == DT_CHECK_WARNING)
        r->warnings++;
    else
        r->ok++;
    if (c->severity && c->severity >= r->fail_on) {
        r->failing++;
        bool failure = false;
        for (unsigned i = 0; i < c->nproblems; i++)
            if (dt_check_kind_severity(c->problems[i].kind) >= r->fail_on &&
                strncmp(dt_check_kind_name(c->problems[i].kind), "error-", 6) != 0)
                failure = true;
        r->junit_errors += !failure;
    }
    for (unsigned i = 0; i < c->nproblems; i++)
        r->kinds[c->problems[i].kind]++;
    time_host(r, &c->chain);
    if (r->progress && r->width && (c->severity || r->verbose) && r->out == stdout &&
        isatty(STDOUT_FILENO)) {
        fprintf(stderr, "\r%*s\r", r->width, ""); /* the report line goes where it stood */
        r->width = 0;
    }
    switch (r->format) {
    case FMT_TEXT:
        text_result(r, e, c);
        break;
    case FMT_JSON: {
        json_t *o = json_result(e, c);
        fputs(r->first ? "\n  " : ",\n  ", r->out);
        r->first = false;
        json_dumpf(o, r->out, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        break;
    }
    case FMT_CSV:
        csv_result(r, e, c);
        break;
    case FMT_JUNIT:
        junit_result(r, e, c);
        break;
    }
    check_entry_free(e);
}

static void show_duration(char *out, size_t cap, double s)
{
    if (s >= 3600)
        snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(out, cap, "%.0fs", s);
}

/* The progress line on a terminal: done/total, rate, ETA, failures so far. */
static void tick(void *ud)
{
    struct run *r = ud;
    if (!r->progress)
        return;
    double s = (double)(dt_now_ms() - r->started_ms) / 1000;
    double rate = s > 0 ? (double)r->done / s : 0;
    char line[200], eta[32] = "";
    int n;
    if (r->estimate && r->done < r->estimate && rate > 0) {
        char d[24];
        show_duration(d, sizeof(d), (double)(r->estimate - r->done) / rate);
        snprintf(eta, sizeof(eta), ", ETA %s", d);
    }
    if (r->estimate)
        n = snprintf(line, sizeof(line),
                     "%" PRIu64 "/~%" PRIu64 " checked, %.0f/s%s, %" PRIu64 " error%s, %" PRIu64
                     " warning%s",
                     r->done, r->estimate > r->done ? r->estimate : r->done, rate, eta, r->errors,
                     r->errors == 1 ? "" : "s", r->warnings, r->warnings == 1 ? "" : "s");
    else
        n = snprintf(line, sizeof(line),
                     "%" PRIu64 " checked, %.0f/s, %" PRIu64 " error%s, %" PRIu64 " warning%s",
                     r->done, rate, r->errors, r->errors == 1 ? "" : "s", r->warnings,
                     r->warnings == 1 ? "" : "s");
    if (n < 0)
        return;
    fprintf(stderr, "\r%s%*s", line, r->width > n ? r->width - n : 0, "");
    r->width = n;
    fflush(stderr);
}

struct slow {
    const char *host[SLOWEST];
    const struct host_time *t[SLOWEST];
    unsigned n;
};

static double average(const struct host_time *t)
{
    return t->requests ? (double)t->total_us / (double)t->requests : 0;
}

static void rank_host(void *ctx, const char *key, void *value)
{
    struct slow *s = ctx;
    const struct host_time *t = value;
    unsigned i = s->n < SLOWEST ? s->n++ : SLOWEST - 1;
    if (i == SLOWEST - 1 && s->n == SLOWEST && s->t[i] && average(s->t[i]) >= average(t))
        return;
    s->host[i] = key;
    s->t[i] = t;
    for (; i > 0 && average(s->t[i - 1]) < average(s->t[i]); i--) {
        const char *h = s->host[i];
        const struct host_time *x = s->t[i];
        s->host[i] = s->host[i - 1];
        s->t[i] = s->t[i - 1];
        s->host[i - 1] = h;
        s->t[i - 1] = x;
    }
}

static void summary_text(struct run *r, FILE *f, const struct check_input_stats *st, double s)
{
    fprintf(f,
            "checked %" PRIu64 " URL%s in %.1f s (%.0f/s): %" PRIu64 " ok, %" PRIu64
            " with errors, %" PRIu64 " with warnings\n",
            r->done, r->done == 1 ? "" : "s", s, s > 0 ? (double)r->done / s : 0, r->ok, r->errors,
            r->warnings);
    if (st->shadowed || st->unsampled || st->no_host || st->errors)
        fprintf(f,
                "not checked: %" PRIu64 " rules another rule answers first, %" PRIu64
                " regexes without a sample, %" PRIu64 " rules for any host (no --base), %" PRIu64
                " bad input lines\n",
                st->shadowed, st->unsampled, st->no_host, st->errors);
    bool any = false;
    for (int k = 0; k < DT_CHECK_NKINDS; k++) {
        if (!r->kinds[k])
            continue;
        if (!any)
            fputs("problems:\n", f);
        any = true;
        fprintf(f, "  %-20s %-8s %" PRIu64 "\n", dt_check_kind_name((enum dt_check_kind)k),
                severity_name(dt_check_kind_severity((enum dt_check_kind)k)), r->kinds[k]);
    }
    struct slow sl = {0};
    dt_strmap_each(&r->hosts, rank_host, &sl);
    if (sl.n)
        fputs("slowest hosts (average per request):\n", f);
    for (unsigned i = 0; i < sl.n; i++)
        fprintf(f, "  %-30s %8.1f ms over %" PRIu64 " request%s (slowest %.1f ms)\n", sl.host[i],
                average(sl.t[i]) / 1000, sl.t[i]->requests, sl.t[i]->requests == 1 ? "" : "s",
                (double)sl.t[i]->max_us / 1000);
}

static json_t *summary_json(struct run *r, const struct check_input_stats *st, double s)
{
    json_t *kinds = json_object();
    for (int k = 0; k < DT_CHECK_NKINDS; k++)
        if (r->kinds[k])
            json_object_set_new(kinds, dt_check_kind_name((enum dt_check_kind)k),
                                json_integer((json_int_t)r->kinds[k]));
    struct slow sl = {0};
    dt_strmap_each(&r->hosts, rank_host, &sl);
    json_t *slow = json_array();
    for (unsigned i = 0; i < sl.n; i++)
        json_array_append_new(slow, json_pack("{s:s, s:I, s:f, s:f}", "host", sl.host[i],
                                              "requests", (json_int_t)sl.t[i]->requests,
                                              "average_ms", average(sl.t[i]) / 1000, "max_ms",
                                              (double)sl.t[i]->max_us / 1000));
    return json_pack("{s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:{s:I, s:I, s:I, s:I}}", "checked",
                     (json_int_t)r->done, "ok", (json_int_t)r->ok, "errors", (json_int_t)r->errors,
                     "warnings", (json_int_t)r->warnings, "seconds", s, "problems", kinds,
                     "slowest_hosts", slow, "not_checked", "shadowed", (json_int_t)st->shadowed,
                     "unsampled", (json_int_t)st->unsampled, "no_host", (json_int_t)st->no_host,
                     "bad_lines", (json_int_t)st->errors);
}

static void finish_report(struct run *r, double s)
{
    const struct check_input_stats *st = check_input_stats(r->in);
    switch (r->format) {
    case FMT_TEXT:
        summary_text(r, r->out, st, s);
        break;
    case FMT_JSON: {
        json_t *sum = summary_json(r, st, s);
        fputs(r->first ? "],\n\"summary\": " : "\n],\n\"summary\": ", r->out);
        json_dumpf(sum, r->out, JSON_INDENT(2) | JSON_ENSURE_ASCII);
        fputs("}\n", r->out);
        json_decref(sum);
        break;
    }
    case FMT_CSV:
        break;
    case FMT_JUNIT: {
        /* per test case: one that could not run is an error, one with a failing problem a
         * failure */
        uint64_t errors = r->junit_errors, failures = r->failing - r->junit_errors;
        fprintf(r->out,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<testsuites name=\"detour check\" tests=\"%" PRIu64 "\" failures=\"%" PRIu64
                "\" errors=\"%" PRIu64 "\" time=\"%.3f\">\n"
                "  <testsuite name=\"detour check\" tests=\"%" PRIu64 "\" failures=\"%" PRIu64
                "\" errors=\"%" PRIu64 "\" skipped=\"0\" time=\"%.3f\">\n",
                r->done, failures, errors, s, r->done, failures, errors, s);
        rewind(r->cases);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), r->cases)) > 0)
            fwrite(buf, 1, n, r->out);
        fputs("  </testsuite>\n</testsuites>\n", r->out);
        break;
    }
    }
    if (r->format != FMT_TEXT && r->progress)
        summary_text(r, stderr, st, s);
}

static int parse_format(const char *v, enum format *f)
{
    static const char *const names[] = {"text", "json", "csv", "junit"};
    for (size_t i = 0; i < DT_ARRAY_LEN(names); i++)
        if (!strcmp(v, names[i])) {
            *f = (enum format)i;
            return 0;
        }
    return DT_EINVAL;
}

int dt_cmd_check(int argc, char **argv)
{
    struct run r = {.format = FMT_TEXT, .fail_on = DT_CHECK_ERROR_LEVEL, .first = true};
    struct dt_client_policy pol;
    dt_client_policy_init(&pol);
    pol.max_redirs = 10;
    pol.timeout_ms = 10000;
    struct dt_check_options co = {.policy = &pol, .concurrency = 64};
    struct check_input_options io = {0};
    const char **resolve = NULL, **connect_to = NULL;
    size_t nresolve = 0, nconnect_to = 0;
    const char *output = NULL;
    bool quiet = false;
    int rc = DT_EXIT_USAGE;
    uint64_t v;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":X:o:vqkh", options, NULL)) != -1) {
        switch (opt) {
        case O_RESOLVE:
            if (dt_opt_curl_map("check", false, optarg, &resolve, &nresolve) != 0)
                goto out;
            break;
        case O_CONNECT_TO:
            if (dt_opt_curl_map("check", true, optarg, &connect_to, &nconnect_to) != 0)
                goto out;
            break;
        case O_BASE:
            io.base = optarg;
            break;
        case O_CONCURRENCY:
            if (dt_opt_uint("check", "--concurrency", optarg, 1, 10000, &v) != 0)
                goto out;
            co.concurrency = (unsigned)v;
            break;
        case O_RATE:
            if (dt_opt_uint("check", "--rate", optarg, 1, 1000000, &v) != 0)
                goto out;
            co.rate = (double)v;
            break;
        case O_TIMEOUT:
            if (dt_opt_duration("check", "--timeout", optarg, 1, 3600 * 1000, &v) != 0)
                goto out;
            pol.timeout_ms = (long)v;
            break;
        case O_MAX_REDIRS:
            if (dt_opt_uint("check", "--max-redirs", optarg, 1, 100, &v) != 0)
                goto out;
            pol.max_redirs = (unsigned)v;
            break;
        case 'X':
            if (!strcasecmp(optarg, "GET"))
                co.get = true;
            else if (!strcasecmp(optarg, "HEAD"))
                co.get = false;
            else {
                /* C4: detour check never sends what it could not send again unasked */
                dt_usage_error("check",
                               "-X '%s': HEAD or GET (an unsafe method is never sent "
                               "to check a redirect)",
                               optarg);
                goto out;
            }
            break;
        case O_FORMAT:
            if (parse_format(optarg, &r.format) != 0) {
                dt_usage_error("check", "--format '%s': text, json, csv or junit", optarg);
                goto out;
            }
            break;
        case O_INPUT_FORMAT:
            io.format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case O_FAIL_ON:
            if (!strcmp(optarg, "warning"))
                r.fail_on = DT_CHECK_WARNING;
            else if (!strcmp(optarg, "error"))
                r.fail_on = DT_CHECK_ERROR_LEVEL;
            else {
                dt_usage_error("check", "--fail-on '%s': warning or error", optarg);
                goto out;
            }
            break;
        case 'v':
            r.verbose = true;
            break;
        case 'q':
            quiet = true;
            break;
        case O_CACERT:
            pol.cacert = optarg;
            break;
        case 'k':
            pol.insecure = true;
            break;
        case O_HTTP11:
            pol.http = DT_CLIENT_HTTP_1_1;
            break;
        case O_HTTP2_PRIOR:
            pol.http = DT_CLIENT_HTTP_2_PRIOR;
            break;
        case 'h':
            fputs(help, stdout);
            rc = DT_EXIT_OK;
            goto out;
        case ':':
            dt_usage_error("check", "%s needs a value", argv[optind - 1]);
            goto out;
        default:
            dt_usage_error("check", "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind >= argc) {
        dt_usage_error("check", "no FILE to check");
        goto out;
    }
    pol.resolve = resolve;
    pol.nresolve = nresolve;
    pol.connect_to = connect_to;
    pol.nconnect_to = nconnect_to;
    io.now = dt_wall_now();
    pol.now = io.now;
    char *const *files = argv + optind;
    size_t nfiles = (size_t)(argc - optind);
    if (check_input_new(&r.in, files, nfiles, &io) != 0)
        goto out;
    r.out = stdout;
    if (output && strcmp(output, "-") != 0 && !(r.out = fopen(output, "w"))) {
        fprintf(stderr, "detour check: -o %s: %s\n", output, strerror(errno));
        rc = DT_EXIT_USAGE;
        goto out;
    }
    if (r.format == FMT_JUNIT && !(r.cases = tmpfile())) {
        fprintf(stderr, "detour check: a temporary file for the JUnit report: %s\n",
                strerror(errno));
        rc = DT_EXIT_FAIL;
        goto out;
    }
    r.progress = !quiet && isatty(STDERR_FILENO);
    if (r.progress)
        r.estimate = check_input_estimate(files, nfiles);
    if (r.format == FMT_JSON)
        fputs("{\"results\": [", r.out);
    else if (r.format == FMT_CSV)
        fputs(csv_header, r.out);
    r.started_ms = dt_now_ms();
    co.next = next_item;
    co.done = done_item;
    co.tick = tick;
    co.ud = &r;
    int run_rc = dt_check_run(&co);
    if (r.progress && r.width)
        fprintf(stderr, "\r%*s\r", r.width, "");
    double seconds = (double)(dt_now_ms() - r.started_ms) / 1000;
    finish_report(&r, seconds);
    if (fflush(r.out) != 0 || ferror(r.out)) {
        fprintf(stderr, "detour check: writing the report: %s\n", strerror(errno));
        rc = DT_EXIT_FAIL;
        goto out;
    }
    if (run_rc) {
        fprintf(stderr, "detour check: %s\n", dt_client_strerror(run_rc));
        rc = DT_EXIT_FAIL;
    } else if (check_input_stats(r.in)->errors) {
        rc = DT_EXIT_USAGE;
    } else {
        rc = r.failing ? DT_EXIT_FAIL : DT_EXIT_OK;
    }
out:
    if (r.out && r.out != stdout)
        fclose(r.out);
    if (r.cases)
        fclose(r.cases);
    check_input_free(r.in);
    dt_strmap_dispose(&r.hosts, free);
    free(resolve);
    free(connect_to);
    return rc;
}

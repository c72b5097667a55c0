/* Unit tests for src/rules: the rule-line syntax and its errors (file:line:column), the
 * table's precedence (exact > longest prefix; host > wildcard host > any host; scheme),
 * time windows, and the Location each rule produces (S1, S4, S7, S8). */
#include "rules/rules.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void parse_lines(void)
{
    struct dt_rule_spec s;
    struct dt_diag d;
    is_int(dt_rule_parse_line(DT_STR("   # a comment"), &s, &d), 0, "comment line");
    is_int(dt_rule_parse_line(DT_STR(""), &s, &d), 0, "blank line");
    is_int(dt_rule_parse_line(DT_STR("/a /b"), &s, &d), 1, "rule line");
    is_span(s.source, "/a", "source");
    is_span(s.target, "/b", "target");
    is_int(s.status, 307, "S8: 307 is the default status");
    is_int(s.max_age, -1, "S4: no cache by default");
    is_int(dt_rule_parse_line(DT_STR("/a\t/b  301 # moved\r"), &s, &d), 1, "tabs, comment, CR");
    is_int(s.status, 301, "S8: status per rule");
    is_int(dt_rule_parse_line(DT_STR("/a /b#frag"), &s, &d), 1, "'#' inside a field");
    is_span(s.target, "/b#frag", "a fragment in a target is not a comment");
    is_int(dt_rule_parse_line(DT_STR("/a /b 308 query=drop cache=60"), &s, &d), 1, "options");
    ok(s.query_drop, "query=drop");
    is_int(s.max_age, 60, "cache=60");
    is_int(dt_rule_parse_line(DT_STR("/a /b from=2026-01-01T00:00:00Z until=2026-02-01"), &s, &d),
           1, "window");
    ok(s.has_from && s.has_until && s.from < s.until, "from and until parsed");

    is_int(dt_rule_parse_line(DT_STR("/a"), &s, &d), DT_ESYNTAX, "missing target");
    is_int(d.offset, 2, "error points after the source");
    is_int(dt_rule_parse_line(DT_STR("/a /b 309"), &s, &d), DT_ESYNTAX, "bad status");
    is_int(d.offset, 6, "error points at the status");
    ok(strstr(d.msg, "301, 302, 303, 307 or 308") != NULL, "message lists valid statuses");
    is_int(dt_rule_parse_line(DT_STR("/a /b 307 301"), &s, &d), DT_ESYNTAX, "two statuses");
    is_int(dt_rule_parse_line(DT_STR("/a /b cache=60 307"), &s, &d), DT_ESYNTAX,
           "status after options");
    is_int(dt_rule_parse_line(DT_STR("/a /b colour=red"), &s, &d), DT_ESYNTAX, "unknown option");
    is_int(d.offset, 6, "error points at the option");
    is_int(dt_rule_parse_line(DT_STR("/a /b query=maybe"), &s, &d), DT_ESYNTAX, "bad query=");
    is_int(d.offset, 12, "error points at the value");
    is_int(dt_rule_parse_line(DT_STR("/a /b cache=-1"), &s, &d), DT_ESYNTAX, "negative cache");
    is_int(dt_rule_parse_line(DT_STR("/a /b cache=1 cache=2"), &s, &d), DT_ESYNTAX, "option twice");
    is_int(dt_rule_parse_line(DT_STR("/a /b until=soon"), &s, &d), DT_ESYNTAX, "bad time");
    is_int(dt_rule_parse_line(DT_STR("/a /b from=2026-02-01 until=2026-01-01"), &s, &d), DT_ESYNTAX,
           "empty window");
    is_int(dt_rule_parse_line(DT_STR("/a /b word"), &s, &d), DT_ESYNTAX, "stray word");
    is_int(dt_rule_parse_line(DT_STR("/a\x01 /b"), &s, &d), DT_ESYNTAX, "control character");
}

/* Builds a finished table from rules text; fails the test if it does not load. */
static struct dt_table *table(const char *text)
{
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    int rc = dt_table_load_text(t, "test.rules", dt_str_make(text, strlen(text)), &e);
    if (rc)
        printf("# load errors:\n# %s", e.text.ptr);
    ok(rc == 0, "rules load");
    dt_errors_dispose(&e);
    dt_table_finish(t);
    return t;
}

/* The Location (or "404") for a request, rendered into a static buffer. */
static const char *answer(const struct dt_table *t, enum dt_scheme scheme, const char *host,
                          const char *target, time_t now, int *status)
{
    static char out[1024];
    const char *q = strchr(target, '?');
    struct dt_str path = {target, q ? (size_t)(q - target) : strlen(target)};
    struct dt_str query = q ? dt_str_make(q + 1, strlen(q + 1)) : DT_STR_NULL;
    struct dt_match m;
    const struct dt_rule *r =
        dt_table_match(t, scheme, dt_str_make(host, strlen(host)), path, query, now, &m);
    if (!r) {
        *status = 404;
        return "404";
    }
    *status = dt_rule_status(r);
    size_t max = dt_table_location_max(t, &m, query);
    size_t n = dt_table_location(t, &m, query, out);
    if (n > max)
        return "(overflow)";
    out[n] = '\0';
    return out;
}

static const char *loc(const struct dt_table *t, const char *host, const char *target)
{
    int status;
    return answer(t, DT_SCHEME_HTTP, host, target, 1796104800, &status);
}

static void precedence(void)
{
    struct dt_table *t = table("/old/url/*        /new/url\n"
                               "/old/url/special  /special\n"
                               "/old/*            /older/:splat\n"
                               "/docs/*           /manual/:splat  308\n"
                               "/exact            /e\n"
                               "/exact            /never\n"
                               "/q                /target?x=1\n"
                               "/drop             /d  query=drop\n"
                               "/anything*        /any-:splat\n");
    is_int(dt_table_size(t), 9, "nine rules");
    is_str(loc(t, "", "/old/url/x"), "/new/url", "S7: every path under a prefix, one target");
    is_str(loc(t, "", "/old/url/special"), "/special", "exact beats prefix");
    is_str(loc(t, "", "/old/url/"), "/new/url", "the prefix itself");
    is_str(loc(t, "", "/old/url"), "/new/url", "/dir/* also answers /dir");
    is_str(loc(t, "", "/old/other/y"), "/older/other/y", "longest prefix wins");
    is_str(loc(t, "", "/old/urlx"), "/older/urlx", "a prefix matches bytes, not segments");
    is_str(loc(t, "", "/docs/a/b.html"), "/manual/a/b.html", "S7: new prefix keeps the rest");
    is_str(loc(t, "", "/docs"), "/manual/", "/docs -> /manual/ with an empty splat");
    is_str(loc(t, "", "/exact"), "/e", "first of two equal sources wins");
    is_str(loc(t, "", "/exact/"), "404", "exact does not match with a trailing slash");
    is_str(loc(t, "", "/Exact"), "404", "paths are case-sensitive");
    is_str(loc(t, "", "/exact?a=1"), "/e?a=1", "query kept by default");
    is_str(loc(t, "", "/q?a=1"), "/target?x=1", "a target's own query wins");
    is_str(loc(t, "", "/drop?a=1"), "/d", "query=drop");
    is_str(loc(t, "", "/anything-goes"), "/any--goes", "prefix without a slash");
    is_str(loc(t, "", "/nothing"), "404", "no rule: 404");
    int status;
    answer(t, DT_SCHEME_HTTP, "", "/docs/x", 0, &status);
    is_int(status, 308, "S8: rule status 308");
    answer(t, DT_SCHEME_HTTP, "", "/exact", 0, &status);
    is_int(status, 307, "S8: default 307");
    dt_table_free(t);
}

static void hosts(void)
{
    struct dt_table *t =
        table("/robots.txt                 /any-robots\n"
              "/*                          /any\n"
              "shop.example.com/*          https://example.com/shop/:splat\n"
              "Shop.Example.com/exact      /shop-exact\n"
              "*.example.com/*             /wild\n"
              "*.deep.example.com/*        /deeper\n"
              "http://secure.example.com/*  https://secure.example.com/:splat 308\n"
              "secure.example.com/*        /plain-rule\n"
              "https://only.example.net/x  /tls-only\n");
    is_str(loc(t, "shop.example.com", "/a/b?c=1"), "https://example.com/shop/a/b?c=1",
           "host rule, absolute target");
    is_str(loc(t, "shop.example.com", "/exact"), "/shop-exact", "host names are case-insensitive");
    is_str(loc(t, "shop.example.com", "/robots.txt"), "https://example.com/shop/robots.txt",
           "a host's own prefix beats an exact rule for any host");
    is_str(loc(t, "a.example.com", "/x"), "/wild", "wildcard host");
    is_str(loc(t, "a.b.example.com", "/x"), "/wild", "wildcard covers deeper names");
    is_str(loc(t, "x.deep.example.com", "/x"), "/deeper", "the most specific wildcard wins");
    is_str(loc(t, "example.com", "/x"), "/any", "*.example.com does not match the apex");
    is_str(loc(t, "other.org", "/robots.txt"), "/any-robots", "any-host rules");
    is_str(loc(t, "", "/x"), "/any", "no host: any-host rules");
    int status;
    is_str(answer(t, DT_SCHEME_HTTP, "secure.example.com", "/p", 0, &status),
           "https://secure.example.com/p", "S9: http:// rule moves to https");
    is_int(status, 308, "S9: with 308");
    is_str(answer(t, DT_SCHEME_HTTPS, "secure.example.com", "/p", 0, &status), "/plain-rule",
           "the http:// rule does not answer https requests");
    is_str(loc(t, "only.example.net", "/x"), "/any", "an https:// rule ignores http requests");
    dt_table_free(t);
}

static void windows(void)
{
    struct dt_table *t =
        table("/sale  /winter-sale  from=2026-12-01T00:00:00Z until=2027-01-01T00:00:00Z\n"
              "/sale  /no-sale\n"
              "/maintenance  /status  307  cache=60  until=2026-12-01T06:00:00Z\n");
    ok(dt_table_has_windows(t), "table knows it has windows");
    int status;
    time_t before = 1796083200 - 1; /* 2026-11-30T23:59:59Z */
    time_t during = 1796083200;     /* 2026-12-01T00:00:00Z */
    time_t after = 1798761600;      /* 2027-01-01T00:00:00Z */
    is_str(answer(t, DT_SCHEME_HTTP, "", "/sale", before, &status), "/no-sale",
           "before its window a rule does not match");
    is_str(answer(t, DT_SCHEME_HTTP, "", "/sale", during, &status), "/winter-sale",
           "from= is inclusive");
    is_str(answer(t, DT_SCHEME_HTTP, "", "/sale", after, &status), "/no-sale",
           "until= is exclusive");
    is_str(answer(t, DT_SCHEME_HTTP, "", "/maintenance", during, &status), "/status",
           "inside until=");
    is_str(answer(t, DT_SCHEME_HTTP, "", "/maintenance", during + 6 * 3600, &status), "404",
           "after until= the rule is gone");
    struct dt_match m;
    const struct dt_rule *r = dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/maintenance"),
                                             DT_STR_NULL, during, &m);
    is_int(r ? dt_rule_max_age(t, r) : -2, 60, "S4: cache=60 reaches the rule");
    dt_table_free(t);
}

static void promotion(void)
{
    /* promote-after=: a 307 answers 308, a 302 answers 301, from since + the age on */
    struct dt_table *t = table("/t /x 307 since=2026-11-01T00:00:00Z promote-after=30d\n"
                               "/f /y 302 since=2026-11-01T00:00:00Z promote-after=12h\n");
    struct dt_match m;
    time_t since = 1793491200; /* 2026-11-01T00:00:00Z */
    const struct dt_rule *r =
        dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/t"), DT_STR_NULL, since, &m);
    is_int(dt_rule_status_at(t, r, since + 30 * 86400 - 1), 307, "a 307 before its age");
    is_int(dt_rule_status_at(t, r, since + 30 * 86400), 308, "a 307 becomes 308 on time");
    time_t at;
    int to;
    ok(dt_rule_promotion(t, r, &at, &to) && at == since + 30 * 86400 && to == 308,
       "dt_rule_promotion says when and to what");
    r = dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/f"), DT_STR_NULL, since, &m);
    is_int(dt_rule_status_at(t, r, since + 12 * 3600 - 1), 302, "a 302 before its age");
    is_int(dt_rule_status_at(t, r, since + 12 * 3600), 301, "a 302 becomes 301 on time");
    is_int(dt_rule_status(r), 302, "dt_rule_status is the written status");
    dt_table_free(t);
    struct dt_rule_spec s;
    struct dt_diag d;
    is_int(dt_rule_parse_line(DT_STR("/a /b promote-after=soon"), &s, &d), DT_ESYNTAX,
           "promote-after= needs an age");
    is_int(d.offset, 20, "the error points at the age");
    is_int(dt_rule_parse_line(DT_STR("/a /b promote-after=90"), &s, &d), DT_ESYNTAX,
           "promote-after= needs a unit");
    is_int(dt_rule_parse_line(DT_STR("/a /b promote-after=90d"), &s, &d), 1, "90d parses");
    is_int(s.promote_after, 90 * 86400, "90d is 90 days");
    struct dt_table *u = dt_table_new();
    struct dt_diag e;
    is_int(
        dt_rule_parse_line(DT_STR("/a /b 301 since=2026-01-01T00:00:00Z promote-after=1d"), &s, &d),
        1, "parses");
    is_int(dt_table_add(u, &s, -1, 1, &e), DT_ESYNTAX, "promote-after= on a 301 is an error");
    ok(strstr(e.msg, "307") != NULL, "the message says what it applies to");
    is_int(dt_rule_parse_line(DT_STR("/a /b 307 promote-after=1d"), &s, &d), 1, "parses");
    is_int(dt_table_add(u, &s, -1, 1, &e), DT_ESYNTAX, "promote-after= without since= is an error");
    is_int(e.offset, 10, "the error points at the option");
    dt_table_free(u);
}

/* Loads text from a file named name; returns the errors' text (static). */
static const char *load_errors(const char *text)
{
    static char msg[4096];
    char path[] = "/tmp/detour-rules-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return "(cannot write temp file)";
    close(fd);
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    int rc = dt_table_load_file(t, path, &e);
    snprintf(msg, sizeof(msg), "%s", rc ? e.text.ptr : "");
    /* replace the temp path by a fixed name so tests can compare */
    char fixed[4096];
    size_t plen = strlen(path), o = 0;
    for (const char *p = msg; *p && o < sizeof(fixed) - 16;) {
        if (!strncmp(p, path, plen)) {
            memcpy(fixed + o, "rules.txt", 9);
            o += 9;
            p += plen;
        } else {
            fixed[o++] = *p++;
        }
    }
    fixed[o] = '\0';
    memcpy(msg, fixed, o + 1);
    dt_errors_dispose(&e);
    dt_table_free(t);
    unlink(path);
    return msg;
}

static void errors(void)
{
    is_str(load_errors("/a /b\n\n/c /d 309\n"),
           "rules.txt:3:7: unknown status 309 (expected 301, 302, 303, 307 or 308)\n",
           "a bad line names file, line and column");
    is_str(load_errors("/a /b\n/x/:id:x /y\n"),
           "rules.txt:2:7: a placeholder is a whole segment: /:name/ (write %3A for a literal "
           "colon)\n",
           "a placeholder is a whole segment");
    const char *e = load_errors("/a /b\nbad /c\n/d ftp://x/y\n/e /f 301 nope\n");
    ok(strstr(e, "rules.txt:2:1: ") != NULL, "every bad line is reported (line 2)");
    ok(strstr(e, "rules.txt:3:4: target scheme must be http or https") != NULL,
       "target errors point into the target (line 3)");
    ok(strstr(e, "rules.txt:4:11: ") != NULL, "line 4 reported too");
    ok(strstr(load_errors("/a /x/:splat\n"),
              "rules.txt:1:7: :splat needs a source ending in '*'") != NULL,
       ":splat without a prefix");
    ok(strstr(load_errors("/a* /b\n/a*b /c\n"), "rules.txt:2:3: '*' may only end a source") != NULL,
       "'*' in the middle");
    ok(strstr(load_errors("/a?x=1&x=2 /b\n"), "rules.txt:1:8: a query parameter is named twice") !=
           NULL,
       "a query parameter named twice");
    {
        /* issue 9: the line that overflowed the template compiler's stack (32 placeholders
         * and a tail), and 33, which is one too many: refused at the 33rd's column */
        char line[512];
        size_t n = (size_t)snprintf(line, sizeof(line), "/u/:id  ");
        for (int i = 0; i < 32; i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "/:id");
        snprintf(line + n, sizeof(line) - n, "/end\n");
        is_str(load_errors(line), "", "32 placeholders and a tail load");
        struct dt_table *t = table(line);
        char want[300];
        size_t w = 0;
        for (int i = 0; i < 32; i++)
            w += (size_t)snprintf(want + w, sizeof(want) - w, "/42");
        snprintf(want + w, sizeof(want) - w, "/end");
        is_str(loc(t, "h", "/u/42"), want, "and fill every one");
        dt_table_free(t);
        n = (size_t)snprintf(line, sizeof(line), "/u/:id  ");
        for (int i = 0; i < 33; i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "/:id");
        snprintf(line + n, sizeof(line) - n, "/end\n");
        is_str(load_errors(line),
               "rules.txt:1:138: too many placeholders in one target (at most 32)\n",
               "33 placeholders: an error naming file, line and column");
    }
    ok(strstr(load_errors("ex ample.com/a /b\n"), "rules.txt:1:") != NULL, "bad host");
    ok(strstr(load_errors("example.com:8080/a /b\n"), "has no port") != NULL, "port in a host");
    ok(strstr(load_errors("ftp://h/a /b\n"), "http or https") != NULL, "bad source scheme");
    ok(strstr(load_errors("~^/x($ /b\n"), "rules.txt:1:7: invalid regular expression: missing "
                                          "closing parenthesis") != NULL,
       "a bad regex is reported with its column");
    ok(strstr(load_errors("/caf\xc3\xa9 /b\n"), "percent-encode non-ASCII") != NULL,
       "raw UTF-8 source refused with a hint");
    ok(strstr(load_errors("/\xc3\xa9\xc3\xa9 /b 999\n"), "rules.txt:1:8: ") != NULL,
       "columns count characters, not bytes");
    is_str(load_errors("# only comments\n\n   \n/ok /fine\n"), "", "comments and blanks load");
    const char *missing = load_errors("");
    is_str(missing, "", "an empty file loads");

    struct dt_table *t = dt_table_new();
    struct dt_errors er;
    dt_errors_init(&er);
    is_int(dt_table_load_file(t, "/nonexistent/rules.txt", &er), DT_EIO, "missing file");
    ok(strstr(er.text.ptr, "/nonexistent/rules.txt: cannot open: No such file") != NULL,
       "missing file named with the reason");
    dt_errors_dispose(&er);
    dt_table_free(t);
}

static void origins(void)
{
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    is_int(dt_table_load_text(t, "one.rules", DT_STR("/a /b\n/c /d\n"), &e), 0, "file one");
    is_int(dt_table_load_text(t, "empty.rules", DT_STR("# nothing\n"), &e), 0, "empty file");
    is_int(dt_table_load_text(t, "two.rules", DT_STR("\n\n/e /f\n"), &e), 0, "file two");
    dt_table_finish(t);
    struct dt_match m;
    const struct dt_rule *r =
        dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/e"), DT_STR_NULL, 0, &m);
    struct dt_rule_origin o = r ? dt_rule_origin(t, r) : (struct dt_rule_origin){0};
    is_str(o.file, "two.rules", "origin file");
    is_int(o.line, 3, "origin line");
    r = dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/c"), DT_STR_NULL, 0, &m);
    o = r ? dt_rule_origin(t, r) : (struct dt_rule_origin){0};
    is_str(o.file, "one.rules", "origin of a rule in the first file");
    is_int(o.line, 2, "its line");
    dt_errors_dispose(&e);
    dt_table_free(t);
}

static void many(void)
{
    /* Enough rules and prefix lengths to exercise growth, collisions and the fallback
     * path for sections with many distinct prefix lengths. */
    struct dt_buf text;
    dt_buf_init(&text);
    for (int i = 0; i < 20000; i++)
        dt_buf_appendf(&text, "/page/%d /target/%d\n", i, i);
    for (int i = 1; i <= 300; i++) {
        dt_buf_appendf(&text, "/p");
        for (int k = 0; k < i; k++)
            dt_buf_append(&text, "x", 1);
        dt_buf_appendf(&text, "* /len-%d\n", i);
    }
    for (int i = 0; i < 500; i++)
        dt_buf_appendf(&text, "host%d.example/* /h%d/:splat\n", i, i);
    dt_buf_terminate(&text);
    struct dt_table *t = table(text.ptr);
    is_int(dt_table_size(t), 20800, "20800 rules");
    is_str(loc(t, "", "/page/12345"), "/target/12345", "exact among many");
    is_str(loc(t, "", "/page/20000"), "404", "absent among many");
    is_str(loc(t, "", "/pxxxxxyz"), "/len-5", "longest of 300 prefix lengths");
    char path[400] = "/p";
    memset(path + 2, 'x', 350);
    path[352] = '\0';
    is_str(loc(t, "", path), "/len-300", "longest prefix when lengths exceed the fast path");
    is_str(loc(t, "host499.example", "/q"), "/h499/q", "host among many");
    dt_table_free(t);
    dt_buf_dispose(&text);
}

static void language(void)
{
    struct dt_table *t = table("/users/:id                 /people/:id\n"
                               "/users/:id/posts/:post     /p/:post?u=:id\n"
                               "/users/me                  /me\n"
                               "/users/admin/*             /admin/:splat\n"
                               "/files/:name/*             /f/:name/:splat\n"
                               "/:lang/docs                /docs?lang=:lang\n"
                               "/:a/:b/end                 /second-pattern\n"
                               "~^/item/([0-9]+)$          /items/$1  302\n"
                               "~^/item/(.*)$              /any-item/$1\n"
                               "~(?i)^/Case                /lower\n"
                               "~\\.php$                   /php-gone$0\n"
                               "~^/a/x                     /ax\n"
                               "~^/a/                      /a-any\n"
                               "~^/b/c*d                   /bcd\n"
                               "/store?id=:id              /blog/:id  301\n"
                               "/a?x=1                     /one\n"
                               "/a?flag                    /flagged\n"
                               "/a                         /plain\n"
                               ".dot.example/*             /dot\n"
                               "/s  /t  since=2026-01-01T00:00:00Z\n"
                               "/o1 https://one.example/x\n"
                               "/o2 https://two.example/y\n"
                               "/o3 https://one.example/z\n");
    is_str(loc(t, "", "/users/42"), "/people/42", "placeholder");
    is_str(loc(t, "", "/users/42?x=1"), "/people/42?x=1", "placeholder, query kept");
    is_str(loc(t, "", "/users/42/posts/7"), "/p/7?u=42", "two placeholders, one in the query");
    is_str(loc(t, "", "/users/me"), "/me", "exact beats a pattern");
    is_str(loc(t, "", "/users/admin/x/y"), "/admin/x/y", "prefix beats a pattern");
    is_str(loc(t, "", "/files/a.txt/deep/er"), "/f/a.txt/deep/er", "placeholder and splat");
    is_str(loc(t, "", "/files/a.txt"), "/f/a.txt/", "pattern/* also answers without the rest");
    is_str(loc(t, "", "/fr/docs"), "/docs?lang=fr", "a leading placeholder");
    is_str(loc(t, "", "/x/y/end"), "/second-pattern", "a pattern of placeholders");
    is_str(loc(t, "", "/fr/docs/end"), "/second-pattern", "patterns in order");
    is_str(loc(t, "", "/users//posts/7"), "404", "a placeholder takes a non-empty segment");
    is_str(loc(t, "", "/item/123"), "/items/123", "regex with a capture");
    is_str(loc(t, "", "/item/abc"), "/any-item/abc", "regexes in order");
    is_str(loc(t, "", "/CASE/x"), "/lower", "case-insensitive regex");
    is_str(loc(t, "", "/old/index.php"), "/php-gone.php", "an unanchored regex; $0");
    is_str(loc(t, "", "/a/xyz"), "/ax", "prefiltered regexes keep their order (1)");
    is_str(loc(t, "", "/a/y"), "/a-any", "prefiltered regexes keep their order (2)");
    is_str(loc(t, "", "/b/d"), "/bcd", "an optional last literal is not required");
    is_str(loc(t, "", "/store?id=9&x=y"), "/blog/9?id=9&x=y", "query condition with capture");
    is_str(loc(t, "", "/store"), "404", "a required parameter missing: no match");
    is_str(loc(t, "", "/store?id="), "404", "a placeholder needs a value");
    is_str(loc(t, "", "/a?x=1"), "/one?x=1", "query condition beats the same path without");
    is_str(loc(t, "", "/a?z=0&x=1"), "/one?z=0&x=1", "parameters in any order");
    is_str(loc(t, "", "/a?x=2"), "/plain?x=2", "a different value: the plain rule");
    is_str(loc(t, "", "/a?flag&x=3"), "/flagged?flag&x=3", "presence condition");
    is_str(loc(t, "", "/a"), "/plain", "no query: the plain rule");
    is_str(loc(t, "dot.example", "/q"), "/dot", ".host covers the host itself");
    is_str(loc(t, "w.dot.example", "/q"), "/dot", ".host covers its subdomains");
    is_str(loc(t, "", "/o1"), "https://one.example/x", "interned origin 1");
    is_str(loc(t, "", "/o2"), "https://two.example/y", "a new origin between two rules");
    is_str(loc(t, "", "/o3"), "https://one.example/z", "origin 1 again");
    struct dt_match m;
    const struct dt_rule *r =
        dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/s"), DT_STR_NULL, 0, &m);
    time_t since = 0;
    ok(r && dt_rule_since(t, r, &since) && since == 1767225600, "S10: since= is kept");
    struct dt_buf b;
    dt_buf_init(&b);
    r = dt_table_match(t, DT_SCHEME_HTTP, DT_STR_NULL, DT_STR("/store"), DT_STR("id=1"), 0, &m);
    dt_rule_source(t, r, &b);
    dt_rule_target(t, r, &b);
    is_strn(b.ptr, b.len, "/store?id=:id/blog/:id", "source and target as written");
    dt_buf_dispose(&b);
    dt_table_free(t);

    const char *e = load_errors("/a/:id*  /b\n");
    ok(strstr(e, "rules.txt:1:7: in a pattern, '*' must follow a '/'") != NULL,
       "a pattern star after a placeholder");
    ok(strstr(load_errors("/a/:x/:x /b\n"), "used twice") != NULL, "a name used twice");
    ok(strstr(load_errors("~^/(a) /x/$2\n"), "rules.txt:1:11: $2: the regular expression has "
                                             "only 1 group") != NULL,
       "a capture beyond the groups");
    ok(strstr(load_errors("/a /x/$0\n"), "needs a regular-expression source") != NULL,
       "$0 without a regex");
    ok(strstr(load_errors("/a?x /x/:y\n"), "unknown placeholder ':y'") != NULL,
       "a placeholder the source does not have");
    is_str(load_errors("/a?x=:v /x/:v\n~^/(?<n>x) /y/$1\n"), "", "query placeholder; named group");
}

static void safety(void)
{
    /* A request can never steer a path target to another host (issue 4, point 2). */
    struct dt_table *t = table("/docs/*  /:splat\n"
                               "/r/*     https://example.com/:splat\n"
                               "~^/x/(.*)$ /$1\n"
                               "/root/*  /root/:splat\n");
    const char *cases[][2] = {
        {"/docs//evil.com", "/evil.com"},
        {"/docs/..//evil.com", "/evil.com"},
        {"/docs/../..//evil.com/a", "/evil.com/a"},
        {"/docs/%2e%2e/%2E%2e//evil.com", "/evil.com"},
        {"/docs/.%2e//evil.com", "/evil.com"},
        {"/docs/\\evil.com", "/%5Cevil.com"},
        {"/docs/%2F%2Fevil.com", "/%2F%2Fevil.com"},
        {"/docs/a/./b/../c", "/a/c"},
        {"/docs/%5C%5Cevil.com", "/%5C%5Cevil.com"},
        {"/x//evil.com", "/evil.com"},
        {"/x/..//evil.com", "/evil.com"},
        {"/root//evil.com", "/root//evil.com"},
        {"/r/..//evil.com", "https://example.com/..//evil.com"},
        {"/docs/caf%C3%A9?q=%2F", "/caf%C3%A9?q=%2F"},
    };
    for (size_t i = 0; i < DT_ARRAY_LEN(cases); i++) {
        char name[160];
        snprintf(name, sizeof(name), "off-site trick %s", cases[i][0]);
        const char *got = loc(t, "", cases[i][0]);
        is_str(got, cases[i][1], name);
        ok(strncmp(got, "//", 2) != 0 && strncmp(got, "/\\", 2) != 0, "never //host");
    }
    dt_table_free(t);
}

/* ---- the rule codec (issue 10): parse(format(r)) == r ------------------------------------ */

static bool same_spec(const struct dt_rule_spec *a, const struct dt_rule_spec *b)
{
    return dt_str_eq(a->source, b->source) && dt_str_eq(a->target, b->target) &&
           a->status == b->status && a->query_drop == b->query_drop &&
           (a->query_set || a->query_drop) == (b->query_set || b->query_drop) &&
           a->max_age == b->max_age && a->has_from == b->has_from &&
           (!a->has_from || a->from == b->from) && a->has_until == b->has_until &&
           (!a->has_until || a->until == b->until) && a->has_since == b->has_since &&
           (!a->has_since || a->since == b->since) && a->promote_after == b->promote_after;
}

static uint64_t codec_rng = 0x2545f4914f6cdd1dull;

static uint64_t codec_rnd(uint64_t n)
{
    codec_rng ^= codec_rng << 13;
    codec_rng ^= codec_rng >> 7;
    codec_rng ^= codec_rng << 17;
    return codec_rng % n;
}

static void codec(void)
{
    struct dt_rule_spec s, back;
    struct dt_diag d;
    struct dt_buf out;
    dt_buf_init(&out);
    dt_rule_spec_init(&s);
    s.source = DT_STR("/a");
    s.target = DT_STR("/b");
    dt_rule_format(&out, &s);
    is_strn(out.ptr, out.len, "/a /b 307", "codec: the defaults write no option");
    s.query_drop = true;
    s.max_age = 60;
    s.has_from = s.has_until = s.has_since = true;
    s.from = 946684800;   /* 2000-01-01 */
    s.until = 4102444800; /* 2100-01-01 */
    s.since = 946684800;
    s.promote_after = 90 * 86400;
    s.status = 302;
    out.len = 0;
    dt_rule_format(&out, &s);
    is_strn(out.ptr, out.len,
            "/a /b 302 query=drop cache=60 from=2000-01-01T00:00:00Z "
            "until=2100-01-01T00:00:00Z since=2000-01-01T00:00:00Z promote-after=90d",
            "codec: every option, in the fixed order");
    out.len = 0;
    dt_rule_format_options(&out, &s, 0);
    is_strn(out.ptr, out.len,
            "query=drop cache=60 from=2000-01-01T00:00:00Z until=2100-01-01T00:00:00Z "
            "promote-after=90d",
            "codec: options alone, as a store keeps them: since= only when asked for");
    dt_rule_spec_init(&back);
    is_int(dt_rule_parse_options(dt_str_make(out.ptr, out.len), &back, &d), 0,
           "codec: options alone parse");
    ok(back.query_drop && back.max_age == 60 && back.from == s.from && back.until == s.until &&
           !back.has_since && back.promote_after == s.promote_after,
       "codec: options alone come back");
    dt_rule_spec_init(&back);
    is_int(dt_rule_parse_options(DT_STR("query=drop nope"), &back, &d), DT_ESYNTAX,
           "codec: a bad option is refused");
    is_int(d.offset, 11, "codec: with its offset");
    is_int(dt_rule_parse_options(DT_STR("cache=5"), &back, &d), 0, "codec: options into a spec");
    is_int(dt_rule_parse_options(DT_STR("until=2030-01-01T00:00:00Z cache=6"), &back, &d),
           DT_ESYNTAX, "codec: an option the spec has already counts as given");
    is_str(d.msg, "option 'cache' given twice", "codec: and says so");
    is_int(d.offset, 27, "codec: at the second one");
    is_int(dt_rule_parse_line(DT_STR("/a /b query=keep"), &back, &d), 1, "codec: query=keep");
    ok(back.query_set && !back.query_drop, "codec: query=keep is remembered as written");
    out.len = 0;
    dt_rule_format(&out, &back);
    is_strn(out.ptr, out.len, "/a /b 307 query=keep", "codec: and written back");
    is_int(dt_rule_parse_options(DT_STR("query=keep"), &back, &d), DT_ESYNTAX,
           "codec: query=keep twice is refused");
    is_int(dt_rule_parse_line(DT_STR("/a /b 307 until=soon"), &back, &d), DT_ESYNTAX,
           "codec: a bad time");
    is_str(d.msg, "until= takes an RFC 3339 time such as 2026-12-01T06:00:00Z, not 'soon'",
           "codec: names the option");
    is_int(dt_rule_parse_options(DT_STR("fast"), &back, &d), DT_ESYNTAX, "codec: no '='");
    is_str(d.msg, "expected an option KEY=VALUE, not 'fast'", "codec: options alone say so");
    char host[64];
    is_strn(host, dt_rule_source_host("Example.COM/a", host, sizeof(host)), "example.com",
            "source host: lower-cased");
    is_strn(host, dt_rule_source_host("https://Shop.example.com/x/*", host, sizeof(host)),
            "shop.example.com", "source host: after the scheme");
    is_strn(host, dt_rule_source_host("*.example.org/y", host, sizeof(host)), "*.example.org",
            "source host: a wildcard is a host of its own");
    is_int(dt_rule_source_host("/a/b", host, sizeof(host)), 0, "source host: none for a path");
    is_int(dt_rule_source_host("~^/x://y", host, sizeof(host)), 0, "source host: none for a regex");
    is_int(dt_rule_source_host("toolong.example/x", host, 4), 0, "source host: longer than cap");
    char age[24];
    is_strn(age, dt_rule_format_age(age, 36 * 3600), "36h", "codec: age in hours");
    is_strn(age, dt_rule_format_age(age, 90 * 60), "90m", "codec: in minutes");
    is_strn(age, dt_rule_format_age(age, 45), "45s", "codec: in seconds");
    is_strn(age, dt_rule_format_age(age, 86400 + 1), "86401s", "codec: inexact: seconds");

    /* property: random rules of every kind and option come back whole */
    static const char *const sources[] = {"/a",
                                          "/p/*",
                                          "/u/:id",
                                          "~^/i/([0-9]+)$",
                                          "example.com/x",
                                          "*.example.com/*",
                                          "https://h.example/s",
                                          "/q?id=:id",
                                          ".example.org/y"};
    static const char *const targets[] = {
        "/b", "/n/:splat", "/v/:id", "/items/$1", "https://t.example/x?y=1#f", "/z#top"};
    static const int statuses[] = {301, 302, 303, 307, 308};
    unsigned bad = 0, tabled = 0;
    for (unsigned i = 0; i < 5000; i++) {
        dt_rule_spec_init(&s);
        unsigned k = (unsigned)codec_rnd(DT_ARRAY_LEN(sources));
        s.source = dt_str_make(sources[k], strlen(sources[k]));
        k = (unsigned)codec_rnd(DT_ARRAY_LEN(targets));
        s.target = dt_str_make(targets[k], strlen(targets[k]));
        s.status = statuses[codec_rnd(5)];
        s.query_drop = codec_rnd(2);
        s.query_set = codec_rnd(2); /* query=keep written: it comes back written */
        s.max_age = codec_rnd(3) ? -1 : (int64_t)codec_rnd(INT32_MAX + 1ull);
        if ((s.has_from = codec_rnd(2)))
            s.from = (time_t)codec_rnd(4102444800ull);
        if ((s.has_until = codec_rnd(2)))
            s.until = s.has_from ? s.from + 1 + (time_t)codec_rnd(1000000)
                                 : (time_t)codec_rnd(4102444800ull);
        if ((s.has_since = codec_rnd(2)))
            s.since = (time_t)codec_rnd(4102444800ull);
        if (codec_rnd(2))
            s.promote_after = 1 + (int64_t)codec_rnd(100LL * 365 * 86400);
        out.len = 0;
        dt_rule_format(&out, &s);
        int rc = dt_rule_parse_line(dt_str_make(out.ptr, out.len), &back, &d);
        if (rc != 1 || !same_spec(&s, &back)) {
            if (bad++ < 3)
                printf("# does not come back: %.*s (%s)\n", (int)out.len, out.ptr,
                       rc == 1 ? "other fields" : d.msg);
            continue;
        }
        /* and a table's rule gives back the fields it was made from */
        struct dt_table *t = dt_table_new();
        if (dt_table_add(t, &back, -1, 1, &d) != 0) {
            dt_table_free(t); /* e.g. promote-after= on a 301: the table refuses it */
            continue;
        }
        dt_table_finish(t);
        struct dt_buf fields;
        dt_buf_init(&fields);
        struct dt_rule_spec of;
        dt_rule_spec_of(t, dt_table_rule(t, 0), &fields, &of);
        of.source = s.source;       /* the table's source is canonical: compared by lookups */
        of.query_set = s.query_set; /* it keeps what a rule does, not whether keep was written */
        if (!same_spec(&s, &of) && bad++ < 3)
            printf("# the table's rule is not the one given: %.*s\n", (int)out.len, out.ptr);
        tabled++;
        dt_buf_dispose(&fields);
        dt_table_free(t);
    }
    is_int(bad, 0, "codec: parse(format(r)) == r for 5000 random rules, and so is a table's rule");
    ok(tabled > 1000, "codec: over a thousand of them through a table");
    dt_buf_dispose(&out);
}

int main(void)
{
    parse_lines();
    language();
    safety();
    precedence();
    hosts();
    windows();
    promotion();
    errors();
    origins();
    many();
    codec();
    return done_testing();
}

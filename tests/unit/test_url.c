/* Unit tests for src/url: RFC 3986 parsing, hosts, and target templates. */
#include "tap.h"
#include "url/url.h"

static void parse(void)
{
    struct dt_url u;
    struct dt_diag d;
    is_int(dt_url_parse(DT_STR("https://user:pw@Example.com:8443/a/b?x=1&y#frag"), &u, &d), 0,
           "absolute URL parses");
    is_span(u.scheme, "https", "scheme");
    is_span(u.userinfo, "user:pw", "userinfo");
    is_span(u.host, "Example.com", "host");
    is_span(u.port, "8443", "port");
    is_span(u.path, "/a/b", "path");
    is_span(u.query, "x=1&y", "query");
    is_span(u.fragment, "frag", "fragment");

    is_int(dt_url_parse(DT_STR("/only/path"), &u, &d), 0, "path reference");
    ok(!u.scheme.len && !u.has_authority, "no scheme, no authority");
    is_int(dt_url_parse(DT_STR("//host/p"), &u, &d), 0, "network-path reference");
    ok(u.has_authority, "network path has authority");
    is_span(u.host, "host", "network path host");
    is_int(dt_url_parse(DT_STR("http://[::1]:80/"), &u, &d), 0, "IPv6 literal");
    is_span(u.host, "[::1]", "IP literal keeps brackets");
    is_int(dt_url_parse(DT_STR("http://[::1/"), &u, &d), DT_ESYNTAX, "unclosed IP literal");
    is_int(dt_url_parse(DT_STR("http://[zz::1]/"), &u, &d), DT_ESYNTAX, "bad IPv6");
    is_int(dt_url_parse(DT_STR("/a b"), &u, &d), DT_ESYNTAX, "space in path");
    is_int(d.offset, 2, "diag points at the space");
    is_int(dt_url_parse(DT_STR("/a%zz"), &u, &d), DT_ESYNTAX, "broken percent-encoding");
    is_int(dt_url_parse(DT_STR("/a%4"), &u, &d), DT_ESYNTAX, "truncated percent-encoding");
    is_int(dt_url_parse(DT_STR("/a%41"), &u, &d), 0, "complete percent-encoding");
    is_int(dt_url_parse(DT_STR("http://h:8x/"), &u, &d), DT_ESYNTAX, "port with a letter");
    is_int(dt_url_parse(DT_STR("1http://h/"), &u, &d), DT_ESYNTAX, "scheme starting with digit");
    is_int(dt_url_parse(DT_STR("/a\"b"), &u, &d), DT_ESYNTAX, "quote in path");
    is_int(dt_url_parse(DT_STR("/a\\b"), &u, &d), DT_ESYNTAX, "backslash in path");

    ok(dt_url_host_valid(DT_STR("example.com")), "host valid");
    ok(dt_url_host_valid(DT_STR("127.0.0.1")), "IPv4 valid");
    ok(dt_url_host_valid(DT_STR("[2001:db8::1]")), "IPv6 literal valid");
    ok(!dt_url_host_valid(DT_STR("exa mple.com")), "space invalid");
    ok(!dt_url_host_valid(DT_STR("a/b")), "slash invalid");
    ok(!dt_url_host_valid(DT_STR("")), "empty invalid");
    ok(!dt_url_host_valid(DT_STR("[::1")), "unclosed literal invalid");
}

static void host_key(void)
{
    char h[64];
    strcpy(h, "Example.COM.");
    is_strn(h, dt_url_host_key(h, strlen(h)), "example.com", "host key: lower case, no final dot");
    strcpy(h, "[::1]");
    is_strn(h, dt_url_host_key(h, strlen(h)), "[::1]", "host key: an IP literal as it is");
    strcpy(h, ".");
    is_strn(h, dt_url_host_key(h, strlen(h)), ".", "host key: a lone dot stays");
}

static void encode(void)
{
    char out[64];
    size_t n = dt_url_encode_path(out, DT_STR("/a b\"<>\\^`{|}\x80%41%zz?#"));
    is_strn(out, n, "/a%20b%22%3C%3E%5C%5E%60%7B%7C%7D%80%41%25zz%3F%23",
            "path values: unsafe bytes encoded, valid %XX kept, stray % encoded");
    n = dt_url_encode_query(out, DT_STR("a=1&b=?/:@"));
    is_strn(out, n, "a=1&b=?/:@", "query keeps ? / : @");
}

/* Compiles text for a source and renders it with the given splat and query. */
static size_t render(const char *text, bool splat, const char *value, const char *query, bool keep,
                     char *out, int *rc, struct dt_diag *d)
{
    struct dt_arena a;
    dt_arena_init(&a, 0);
    struct dt_template t;
    struct dt_tpl_source src = {.splat = splat};
    *rc = dt_template_compile(dt_str_make(text, strlen(text)), &src, &a, &t, d);
    size_t n = 0;
    if (*rc == 0) {
        struct dt_tpl_values v = {.splat = dt_str_make(value, value ? strlen(value) : 0),
                                  .query = dt_str_make(query, query ? strlen(query) : 0),
                                  .keep_query = keep};
        size_t max = dt_template_max_len(&t, &v);
        n = dt_template_render(&t, &v, out);
        if (n > max)
            printf("# render wrote %zu > max %zu\n", n, max);
    }
    dt_arena_dispose(&a);
    return n;
}

static void templates(void)
{
    char out[512];
    int rc;
    struct dt_diag d;
    size_t n;

    n = render("/new/url", false, NULL, "a=1", true, out, &rc, &d);
    is_strn(out, n, "/new/url?a=1", "query kept and appended");
    n = render("/new/url", false, NULL, "a=1", false, out, &rc, &d);
    is_strn(out, n, "/new/url", "query=drop");
    n = render("/new?b=2", false, NULL, "a=1", true, out, &rc, &d);
    is_strn(out, n, "/new?b=2", "a target with its own query keeps only it");
    n = render("/new#top", false, NULL, "a=1", true, out, &rc, &d);
    is_strn(out, n, "/new?a=1#top", "query goes before the target's fragment");
    n = render("/manual/:splat", true, "a/b.html", "", true, out, &rc, &d);
    is_strn(out, n, "/manual/a/b.html", "S7: :splat keeps the rest of the path");
    n = render("https://example.com/shop/:splat", true, "x%20y", "q=1", true, out, &rc, &d);
    is_strn(out, n, "https://example.com/shop/x%20y?q=1", "percent-encoding is preserved");
    n = render("/p/:splat.html", true, "a\"b", NULL, true, out, &rc, &d);
    is_strn(out, n, "/p/a%22b.html", "a quote from the request is encoded");
    n = render("/:splat", true, "/evil.com/x", NULL, true, out, &rc, &d);
    is_strn(out, n, "/evil.com/x", "a splat cannot make //host (off-site)");
    n = render("/:splat", true, "\\evil.com", NULL, true, out, &rc, &d);
    is_strn(out, n, "/%5Cevil.com", "a backslash is encoded, not read as a slash");
    n = render("/:splat", true, "//evil.com", "a=1", true, out, &rc, &d);
    is_strn(out, n, "/evil.com?a=1", "several leading slashes collapse");
    n = render("/x/:splat#:splat", true, "y", NULL, true, out, &rc, &d);
    is_strn(out, n, "/x/y#y", "holes in the fragment are filled too");
    n = render("/a\r\n", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "CR LF in a target is refused");

    render("ftp://example.com/x", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "only http and https targets");
    render("//evil.com/x", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "a target may not start with //");
    render("relative/x", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "a relative path target is refused");
    render("/x/:splat", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, ":splat needs a prefix source");
    render("/x/:name", true, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "unknown placeholder");
    is_int(d.offset, 3, "diag points at the placeholder");
    render("https://:splat.example.com/", true, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "no hole in the host");
    render("https://$1.example.com/", true, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "no capture in the host");
    render("/x/$1", true, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "$1 needs a regex source");
    render("https://example.com:8443/x", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, 0, "a port is not a placeholder");
    render("", false, NULL, NULL, true, out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "empty target");
}

/* Issue 9: a target with the most placeholders and text after the last one wrote past the
 * compiler's stack array (ASan: stack-buffer-overflow in dt_template_compile). */
static size_t many_holes(unsigned holes, const char *tail, char *out, int *rc, struct dt_diag *d)
{
    char text[1024];
    size_t len = 0;
    for (unsigned i = 0; i < holes; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "/:id");
    snprintf(text + len, sizeof(text) - len, "%s", tail);
    struct dt_arena a;
    dt_arena_init(&a, 0);
    struct dt_template t;
    struct dt_str names[1] = {DT_STR("id")};
    struct dt_tpl_source src = {.nnames = 1, .names = names};
    *rc = dt_template_compile(dt_str_make(text, strlen(text)), &src, &a, &t, d);
    size_t n = 0;
    if (*rc == 0) {
        struct dt_str named[1] = {DT_STR("7")};
        struct dt_tpl_values v = {.named = named};
        n = dt_template_render(&t, &v, out);
    }
    dt_arena_dispose(&a);
    return n;
}

static void template_limits(void)
{
    char out[1024], want[1024];
    int rc;
    struct dt_diag d;
    for (unsigned holes = 31; holes <= 32; holes++) {
        size_t n = many_holes(holes, "/end", out, &rc, &d);
        is_int(rc, 0,
               holes == 31 ? "31 placeholders and a tail compile"
                           : "32 placeholders (the most) and a tail compile");
        size_t wl = 0;
        for (unsigned i = 0; i < holes; i++)
            wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "/7");
        snprintf(want + wl, sizeof(want) - wl, "/end");
        is_strn(out, n, want, "every placeholder filled, the tail kept");
    }
    size_t n = many_holes(32, "", out, &rc, &d);
    is_int(rc, 0, "32 placeholders without a tail compile");
    ok(n == 64 && !memcmp(out + 62, "/7", 2), "and render");
    many_holes(33, "/end", out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "33 placeholders are refused");
    is_int(d.offset, 32 * 4 + 1, "the diagnostic points at the 33rd");
    ok(strstr(d.msg, "at most 32") != NULL, "and says the limit");
    many_holes(33, "", out, &rc, &d);
    is_int(rc, DT_ESYNTAX, "33 placeholders without a tail are refused");
}

/* Issue 9: a Location with spaces or raw UTF-8 is percent-encoded as browsers do. */
static void encodes_reference(const char *ref, const char *want, size_t want_n)
{
    struct dt_buf out;
    dt_buf_init(&out);
    size_t n = dt_url_encode_reference(&out, dt_str_make(ref, strlen(ref)));
    char name[200];
    snprintf(name, sizeof(name), "encode_reference: %s", ref);
    is_strn(out.ptr ? out.ptr : "", out.len, want, name);
    is_int(n, want_n, "bytes encoded");
    dt_buf_dispose(&out);
}

static void encode_reference(void)
{
    encodes_reference("/a b", "/a%20b", 1);
    encodes_reference("/caf\xc3\xa9?q=\xc3\xa9 x#fr ag", "/caf%C3%A9?q=%C3%A9%20x#fr%20ag", 6);
    encodes_reference("https://h.example/x y", "https://h.example/x%20y", 1);
    encodes_reference("https://h ex/x y", "https://h ex/x%20y", 1);
    encodes_reference("//h/\"<>^`{|}[]", "//h/%22%3C%3E%5E%60%7B%7C%7D%5B%5D", 10);
    encodes_reference("/ok/%41%zz", "/ok/%41%25zz", 1);
    encodes_reference("/a?b?c#d#e", "/a?b?c#d%23e", 1);
    encodes_reference("/a\\b", "/a\\b", 0);
    encodes_reference("/plain?x=1#f", "/plain?x=1#f", 0);
    encodes_reference("rel path", "rel%20path", 1);
    encodes_reference("mailto:a b", "mailto:a%20b", 1);
    encodes_reference("", "", 0);
}

/* Resolves ref against base and compares with want. */
static void resolves(const char *base, const char *ref, const char *want)
{
    struct dt_buf out;
    dt_buf_init(&out);
    char name[200];
    snprintf(name, sizeof(name), "C6: %s + %s", base, ref);
    int rc =
        dt_url_resolve(dt_str_make(base, strlen(base)), dt_str_make(ref, strlen(ref)), &out, NULL);
    if (rc == 0)
        is_strn(out.ptr, out.len, want, name);
    else
        ok(0, name);
    dt_buf_dispose(&out);
}

static void resolve(void)
{
    /* RFC 3986 5.4.1, normal examples */
    const char *b = "http://a/b/c/d;p?q";
    resolves(b, "g:h", "g:h");
    resolves(b, "g", "http://a/b/c/g");
    resolves(b, "./g", "http://a/b/c/g");
    resolves(b, "g/", "http://a/b/c/g/");
    resolves(b, "/g", "http://a/g");
    resolves(b, "//g", "http://g");
    resolves(b, "?y", "http://a/b/c/d;p?y");
    resolves(b, "g?y", "http://a/b/c/g?y");
    resolves(b, "#s", "http://a/b/c/d;p?q#s");
    resolves(b, "g#s", "http://a/b/c/g#s");
    resolves(b, "g?y#s", "http://a/b/c/g?y#s");
    resolves(b, ";x", "http://a/b/c/;x");
    resolves(b, "g;x", "http://a/b/c/g;x");
    resolves(b, "g;x?y#s", "http://a/b/c/g;x?y#s");
    resolves(b, "", "http://a/b/c/d;p?q");
    resolves(b, ".", "http://a/b/c/");
    resolves(b, "./", "http://a/b/c/");
    resolves(b, "..", "http://a/b/");
    resolves(b, "../", "http://a/b/");
    resolves(b, "../g", "http://a/b/g");
    resolves(b, "../..", "http://a/");
    resolves(b, "../../", "http://a/");
    resolves(b, "../../g", "http://a/g");
    /* 5.4.2, abnormal examples */
    resolves(b, "../../../g", "http://a/g");
    resolves(b, "../../../../g", "http://a/g");
    resolves(b, "/./g", "http://a/g");
    resolves(b, "/../g", "http://a/g");
    resolves(b, "g.", "http://a/b/c/g.");
    resolves(b, ".g", "http://a/b/c/.g");
    resolves(b, "g..", "http://a/b/c/g..");
    resolves(b, "..g", "http://a/b/c/..g");
    resolves(b, "./../g", "http://a/b/g");
    resolves(b, "./g/.", "http://a/b/c/g/");
    resolves(b, "g/./h", "http://a/b/c/g/h");
    resolves(b, "g/../h", "http://a/b/c/h");
    resolves(b, "g;x=1/./y", "http://a/b/c/g;x=1/y");
    resolves(b, "g;x=1/../y", "http://a/b/c/y");
    resolves(b, "g?y/./x", "http://a/b/c/g?y/./x");
    resolves(b, "g?y/../x", "http://a/b/c/g?y/../x");
    resolves(b, "g#s/./x", "http://a/b/c/g#s/./x");
    resolves(b, "g#s/../x", "http://a/b/c/g#s/../x");
    resolves(b, "http:g", "http:g");
    /* RFC 9110 10.2.2: the fragment is inherited unless the Location has its own */
    resolves("http://a/x#frag", "/y", "http://a/y#frag");
    resolves("http://a/x#frag", "/y#new", "http://a/y#new");
    resolves("http://a/x#frag", "https://b/z?q", "https://b/z?q#frag");
    resolves("http://a", "x", "http://a/x");
    resolves("http://a/b", " /c ", "http://a/c");
    struct dt_buf out;
    dt_buf_init(&out);
    ok(dt_url_resolve(DT_STR("/relative"), DT_STR("x"), &out, NULL) != 0,
       "a relative base is refused");
    ok(dt_url_resolve(DT_STR("http://a/"), DT_STR("/a b"), &out, NULL) != 0,
       "an invalid Location is refused");
    dt_buf_dispose(&out);
}

int main(void)
{
    parse();
    resolve();
    encode();
    host_key();
    templates();
    template_limits();
    encode_reference();
    return done_testing();
}

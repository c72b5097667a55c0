/* fuzz_rules: any bytes as a rule file must load or be refused with a message, never
 * crash; a loaded table must answer lookups and render Locations within their bounds,
 * without CR, LF or NUL; every line that parses, formatted by the codec, parses back to the
 * same fields, and so do its options alone. */
#include "rules/rules.h"

#include <stdlib.h>

static bool same(const struct dt_rule_spec *a, const struct dt_rule_spec *b)
{
    return dt_str_eq(a->source, b->source) && dt_str_eq(a->target, b->target) &&
           a->status == b->status && a->query_drop == b->query_drop &&
           a->query_set == b->query_set && a->max_age == b->max_age && a->has_from == b->has_from &&
           (!a->has_from || a->from == b->from) && a->has_until == b->has_until &&
           (!a->has_until || a->until == b->until) && a->has_since == b->has_since &&
           (!a->has_since || a->since == b->since) && a->promote_after == b->promote_after;
}

/* The codec: parse(format(r)) == r for each line of the input that parses. */
static void round_trip(const char *p, size_t size)
{
    struct dt_buf out, opt;
    dt_buf_init(&out);
    dt_buf_init(&opt);
    for (size_t i = 0; i < size;) {
        const char *nl = memchr(p + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (p + i)) : size - i;
        struct dt_rule_spec s, back;
        struct dt_diag d;
        if (dt_rule_parse_line(dt_str_make(p + i, len), &s, &d) == 1) {
            out.len = 0;
            dt_rule_format(&out, &s);
            if (dt_rule_parse_line(dt_str_make(out.ptr, out.len), &back, &d) != 1 ||
                !same(&s, &back))
                abort();
            opt.len = 0;
            dt_rule_format_options(&opt, &s, DT_RULE_OPT_SINCE);
            back = s;
            back.query_drop = back.query_set = false;
            back.has_from = back.has_until = back.has_since = false;
            back.max_age = -1;
            back.promote_after = 0;
            if (dt_rule_parse_options(dt_str_make(opt.ptr ? opt.ptr : "", opt.len), &back, &d) !=
                    0 ||
                !same(&s, &back))
                abort();
        }
        i += len + 1;
    }
    dt_buf_dispose(&out);
    dt_buf_dispose(&opt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    round_trip((const char *)data, size);
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    int rc = dt_table_load_text(t, "fuzz", dt_str_make((const char *)data, size), &e);
    if (rc != 0 && (!e.count || !e.text.ptr))
        abort(); /* a refusal always says why */
    if (rc == 0) {
        dt_table_finish(t);
        static const char *const paths[] = {
            "/",         "/a",    "/a/b", "/old/url/x", "//evil", "/x", "/users/42/posts/7",
            "/item/123", "/..//x"};
        static const char *const hosts[] = {"", "example.com", "a.example.com"};
        for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
            for (size_t h = 0; h < sizeof(hosts) / sizeof(*hosts); h++) {
                struct dt_match m;
                struct dt_str path = dt_str_make(paths[i], strlen(paths[i]));
                struct dt_str host = dt_str_make(hosts[h], strlen(hosts[h]));
                struct dt_str q = DT_STR("a=1&id=7&flag&b=%zz\"");
                if (!dt_table_match(t, DT_SCHEME_HTTP, host, path, q, 1796104800, &m))
                    continue;
                size_t max = dt_table_location_max(t, &m, q);
                char *out = malloc(max + 1);
                size_t n = dt_table_location(t, &m, q, out);
                if (n > max)
                    abort();
                for (size_t k = 0; k < n; k++)
                    if (out[k] == '\r' || out[k] == '\n' || out[k] == '\0')
                        abort();
                if (n >= 2 && out[0] == '/' && (out[1] == '/' || out[1] == '\\'))
                    abort(); /* a path target never turns into another host */
                free(out);
            }
        }
    }
    dt_errors_dispose(&e);
    dt_table_free(t);
    return 0;
}

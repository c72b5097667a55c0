/* fuzz_rules: any bytes as a rule file must load or be refused with a message, never
 * crash; a loaded table must answer lookups and render Locations within their bounds,
 * without CR, LF or NUL. */
#include "rules/rules.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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

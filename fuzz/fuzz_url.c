/* fuzz_url: URI parsing, target templates and Location encoding. A template that compiles
 * must render values from the input within its bound, as a valid URI reference whose scheme
 * and host are the template's own; encoding a reference twice is encoding it once. */
#include "url/url.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* input: TEMPLATE \0 VALUE \0 QUERY */
    const char *s = (const char *)data;
    const char *z1 = memchr(s, '\0', size);
    struct dt_str text = {s, z1 ? (size_t)(z1 - s) : size};
    struct dt_str value = DT_STR_NULL, query = DT_STR_NULL;
    if (z1) {
        const char *v = z1 + 1;
        size_t rest = size - (size_t)(v - s);
        const char *z2 = memchr(v, '\0', rest);
        value = dt_str_make(v, z2 ? (size_t)(z2 - v) : rest);
        if (z2)
            query = dt_str_make(z2 + 1, size - (size_t)(z2 + 1 - s));
    }
    struct dt_url u;
    (void)dt_url_parse(text, &u, NULL);
    /* a Location percent-encoded as browsers do: encoding again changes nothing, and the
     * scheme and authority stay as they were */
    struct dt_buf once, twice;
    dt_buf_init(&once);
    dt_buf_init(&twice);
    size_t n1 = dt_url_encode_reference(&once, text);
    size_t n2 = dt_url_encode_reference(&twice, dt_str_make(once.ptr ? once.ptr : "", once.len));
    if (n2 != 0 || once.len != twice.len || once.len > 3 * text.len ||
        (once.len && memcmp(once.ptr, twice.ptr, once.len) != 0) ||
        (n1 == 0 && (once.len != text.len || (text.len && memcmp(once.ptr, text.ptr, text.len)))))
        abort();
    dt_buf_dispose(&once);
    dt_buf_dispose(&twice);
    struct dt_arena a;
    dt_arena_init(&a, 0);
    struct dt_template t;
    struct dt_str names[] = {DT_STR("id")};
    struct dt_tpl_source src = {.splat = true, .ncaptures = 2, .nnames = 1, .names = names};
    if (dt_template_compile(text, &src, &a, &t, NULL) == 0) {
        struct dt_str caps[3] = {value, value, DT_STR_NULL};
        struct dt_tpl_values v = {.splat = value,
                                  .named = names,
                                  .captures = caps,
                                  .ncaptures = 3,
                                  .query = query,
                                  .keep_query = true};
        names[0] = value;
        size_t max = dt_template_max_len(&t, &v);
        char *out = malloc(max + 1);
        size_t n = dt_template_render(&t, &v, out);
        if (n > max)
            abort();
        struct dt_url r, tu;
        if (dt_url_parse(dt_str_make(out, n), &r, NULL) != 0)
            abort(); /* what we send as Location is always a valid URI reference */
        if (dt_url_parse(text, &tu, NULL) != 0)
            abort();
        if (!dt_str_eq(r.scheme, tu.scheme) || !dt_str_eq(r.host, tu.host) ||
            r.has_authority != tu.has_authority)
            abort(); /* filled-in values never change scheme or host */
        free(out);
    }
    dt_arena_dispose(&a);
    return 0;
}

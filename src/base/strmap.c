/* strmap: a map from strings to the caller's pointers, by open addressing (linear probing,
 * FNV-1a), for tables keyed by a name such as a host. Keys are copied. */
#include "base/base.h"

#include <stdlib.h>

uint64_t dt_hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

void dt_strmap_init(struct dt_strmap *m)
{
    memset(m, 0, sizeof(*m));
}

static struct dt_strmap_entry *probe(struct dt_strmap_entry *v, size_t cap, const char *key,
                                     uint64_t h)
{
    size_t i = h & (cap - 1);
    while (v[i].key && (v[i].hash != h || strcmp(v[i].key, key) != 0))
        i = (i + 1) & (cap - 1);
    return &v[i];
}

/* Rebuilds with room for cap, keeping the entries drop does not want gone. */
static void rebuild(struct dt_strmap *m, size_t cap, bool (*drop)(void *ctx, void *value),
                    void *ctx)
{
    struct dt_strmap_entry *v = dt_xcalloc(cap, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++) {
        struct dt_strmap_entry *e = &m->v[i];
        if (!e->key)
            continue;
        if (drop && drop(ctx, e->value)) {
            free(e->key);
            continue;
        }
        *probe(v, cap, e->key, e->hash) = *e;
        n++;
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
    m->n = n;
}

void **dt_strmap_get(struct dt_strmap *m, const char *key, bool create)
{
    uint64_t h = dt_hash_bytes(key, strlen(key));
    if (m->cap) {
        struct dt_strmap_entry *e = probe(m->v, m->cap, key, h);
        if (e->key)
            return &e->value;
    }
    if (!create)
        return NULL;
    if ((m->n + 1) * 2 > m->cap)
        rebuild(m, m->cap ? m->cap * 2 : 64, NULL, NULL);
    struct dt_strmap_entry *e = probe(m->v, m->cap, key, h);
    e->key = dt_xstrndup(key, strlen(key));
    e->hash = h;
    e->value = NULL;
    m->n++;
    return &e->value;
}

void dt_strmap_prune(struct dt_strmap *m, bool (*drop)(void *ctx, void *value), void *ctx)
{
    if (m->cap)
        rebuild(m, m->cap, drop, ctx);
}

void dt_strmap_each(const struct dt_strmap *m, void (*fn)(void *ctx, const char *key, void *value),
                    void *ctx)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i].key)
            fn(ctx, m->v[i].key, m->v[i].value);
}

void dt_strmap_dispose(struct dt_strmap *m, void (*free_value)(void *value))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->v[i].key)
            continue;
        free(m->v[i].key);
        if (free_value)
            free_value(m->v[i].value);
    }
    free(m->v);
    dt_strmap_init(m);
}

/* cache: remembered permanent redirects (C5). Only 301 and 308 are kept: a 307 (or 302,
 * 303) is temporary and later requests must go to the original URL again. */
#include "client/internal.h"

#include <stdlib.h>

struct cached {
    char *url;
    char *target;
    int status;
};

struct dt_client_cache {
    struct cached *items;
    size_t n, cap;
};

struct dt_client_cache *dt_client_cache_new(void)
{
    return calloc(1, sizeof(struct dt_client_cache));
}

void dt_client_cache_free(struct dt_client_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].url);
        free(c->items[i].target);
    }
    free(c->items);
    free(c);
}

size_t dt_client_cache_size(const struct dt_client_cache *c)
{
    return c ? c->n : 0;
}

int dt_client_cache_lookup(const struct dt_client_cache *c, const char *url, const char **target)
{
    if (!c)
        return 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->items[i].url, url)) {
            *target = c->items[i].target;
            return c->items[i].status;
        }
    }
    return 0;
}

void dt_client_cache_store(struct dt_client_cache *c, const char *url, int status,
                           const char *target)
{
    if (!c || (status != 301 && status != 308))
        return; /* C5: a 307 is never remembered */
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->items[i].url, url)) {
            char *t = strdup(target);
            if (!t)
                return;
            free(c->items[i].target);
            c->items[i].target = t;
            c->items[i].status = status;
            return;
        }
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct cached *p = realloc(c->items, cap * sizeof(*p));
        if (!p)
            return; /* a cache may forget; nothing depends on it */
        c->items = p;
        c->cap = cap;
    }
    struct cached *e = &c->items[c->n];
    e->url = strdup(url);
    e->target = strdup(target);
    e->status = status;
    if (!e->url || !e->target) {
        free(e->url);
        free(e->target);
        return;
    }
    c->n++;
}

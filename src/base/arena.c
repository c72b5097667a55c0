/* arena: a bump allocator; everything allocated from one arena is freed at once. */
#include "base/base.h"

#include <stdlib.h>

struct dt_arena_block {
    struct dt_arena_block *next;
    size_t used;
    size_t size;
    _Alignas(16) char data[];
};

void dt_arena_init(struct dt_arena *a, size_t block_size)
{
    a->_head = NULL;
    a->_block_size = block_size ? block_size : 64 * 1024;
    a->total = 0;
}

void dt_arena_dispose(struct dt_arena *a)
{
    struct dt_arena_block *b = a->_head;
    while (b) {
        struct dt_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->_head = NULL;
    a->total = 0;
}

void *dt_arena_alloc(struct dt_arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    struct dt_arena_block *b = a->_head;
    if (!b || b->size - b->used < size) {
        /* Large requests get a block of their own, placed behind the current one so the
         * current block's free space is not wasted. */
        size_t bsize = size > a->_block_size / 4 ? size : a->_block_size;
        struct dt_arena_block *nb = dt_xmalloc(sizeof(*nb) + bsize);
        nb->used = 0;
        nb->size = bsize;
        if (b && bsize != a->_block_size) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->_head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += size;
    a->total += size;
    return p;
}

char *dt_arena_strndup(struct dt_arena *a, const char *s, size_t len)
{
    char *p = dt_arena_alloc(a, len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

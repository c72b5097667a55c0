/* timer: a worker's timer lists. Each list holds connections whose deadline is now plus one
 * constant (header, idle, linger), so appending keeps a list sorted and only its head can
 * be due. conn.c sets and clears them; the worker's loop asks for the earliest and expires
 * the due ones. */
#include "server/internal.h"

void timer_unlink(struct conn *c)
{
    if (c->tlist == TL_NONE)
        return;
    struct tlist *l = &c->w->timers[c->tlist];
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        l->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        l->tail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tlist = TL_NONE;
}

void timer_set(struct conn *c, int list)
{
    struct worker *w = c->w;
    timer_unlink(c);
    struct tlist *l = &w->timers[list];
    c->deadline = w->now_ms + w->timeout_ms[list];
    c->tlist = (uint8_t)list;
    c->tprev = l->tail;
    c->tnext = NULL;
    if (l->tail)
        l->tail->tnext = c;
    else
        l->head = c;
    l->tail = c;
}

uint64_t timer_earliest(const struct worker *w)
{
    uint64_t next = UINT64_MAX;
    for (int i = TL_HEADER; i < TL_COUNT; i++)
        if (w->timers[i].head && w->timers[i].head->deadline < next)
            next = w->timers[i].head->deadline;
    return next;
}

/* Unit tests for src/admin/throttle.c: failed admin tokens held back per address (issue 13),
 * at times the test chooses (monotonic milliseconds from an arbitrary start). */
#include "admin/internal.h"
#include "tap.h"

#include <stdlib.h>

#define T0 7000000000ULL /* any start: the policy only ever subtracts */

/* n failures from peer, each at `at` (advanced past any hold they start); the last hold. */
static uint64_t fail_n(struct dt_admin_throttle *t, const char *peer, int n, uint64_t *at)
{
    uint64_t hold = 0;
    for (int i = 0; i < n; i++) {
        *at += dt_admin_throttle_wait(t, peer, *at);
        hold = dt_admin_throttle_failed(t, peer, *at, NULL);
    }
    return hold;
}

static void test_held_after_the_limit_then_doubling_up_to_the_cap(void)
{
    struct dt_admin_throttle t;
    dt_admin_throttle_init(&t, 5);
    uint64_t now = T0;
    uint32_t failures = 0;
    for (int i = 1; i <= 4; i++) {
        is_int(dt_admin_throttle_failed(&t, "192.0.2.7", now, &failures), 0,
               "no hold before the fifth failure");
        is_int(failures, i, "failures counted in a row");
        is_int(dt_admin_throttle_wait(&t, "192.0.2.7", now), 0, "and no wait");
        now += 10;
    }
    is_int(dt_admin_throttle_failed(&t, "192.0.2.7", now, &failures), 1000,
           "the fifth failure: held back 1 s");
    is_int(failures, 5, "five in a row");
    is_int(dt_admin_throttle_wait(&t, "192.0.2.7", now), 1000, "1 s to wait");
    is_int(dt_admin_throttle_wait(&t, "192.0.2.7", now + 999), 1, "1 ms to wait, 999 ms later");
    is_int(dt_admin_throttle_wait(&t, "192.0.2.7", now + 1000), 0, "then its requests are read");
    is_int(dt_admin_throttle_held(&t, now + 500), 1, "one address held meanwhile");
    is_int(dt_admin_throttle_held(&t, now + 1000), 0, "none after");
    now += 1000;
    static const uint64_t holds[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (size_t i = 0; i < DT_ARRAY_LEN(holds); i++) {
        uint64_t hold = dt_admin_throttle_failed(&t, "192.0.2.7", now, NULL);
        is_int(hold, holds[i], "each failure after a hold doubles it, up to 60 s");
        now += hold;
    }
    is_int(fail_n(&t, "192.0.2.7", 100, &now), 60000, "100 more: still 60 s, no overflow");
    dt_admin_throttle_dispose(&t);
}

static void test_nobody_else_is_held(void)
{
    struct dt_admin_throttle t;
    dt_admin_throttle_init(&t, 5);
    uint64_t now = T0;
    fail_n(&t, "127.0.0.1", 5, &now);
    ok(dt_admin_throttle_wait(&t, "127.0.0.1", now) > 0, "127.0.0.1 held back");
    is_int(dt_admin_throttle_wait(&t, "127.0.0.2", now), 0, "127.0.0.2 is not");
    is_int(dt_admin_throttle_wait(&t, "::1", now), 0, "::1 is not");
    ok(dt_admin_throttle_wait(&t, "::ffff:127.0.0.1", now) > 0,
       "the same address mapped into IPv6 is the same address");
    /* IPv6: one /64 is one client */
    fail_n(&t, "2001:db8:1:2::10", 5, &now);
    ok(dt_admin_throttle_wait(&t, "2001:db8:1:2:ffff::99", now) > 0,
       "another address of the same /64 is held too");
    is_int(dt_admin_throttle_wait(&t, "2001:db8:1:3::10", now), 0, "another /64 is not");
    /* a Unix socket's clients, and what is no address, are never held */
    uint64_t at = now;
    is_int(fail_n(&t, "unix", 50, &at), 0, "unix: no hold");
    is_int(fail_n(&t, "", 50, &at), 0, "no address: no hold");
    is_int(fail_n(&t, "not an address", 50, &at), 0, "junk: no hold");
    is_int(dt_admin_throttle_failed(&t, NULL, now, NULL), 0, "NULL: no hold");
    dt_admin_throttle_dispose(&t);
}

static void test_a_good_token_or_ten_quiet_minutes_forget(void)
{
    struct dt_admin_throttle t;
    dt_admin_throttle_init(&t, 5);
    uint64_t now = T0;
    fail_n(&t, "198.51.100.1", 4, &now);
    dt_admin_throttle_passed(&t, "198.51.100.1");
    is_int(fail_n(&t, "198.51.100.1", 4, &now), 0, "a good token: four more are free again");
    is_int(fail_n(&t, "198.51.100.1", 1, &now), 1000, "and the fifth holds");
    /* ten minutes after the last failure (the hold long over), the count starts again */
    now += DT_THROTTLE_FORGET_MS - 1;
    is_int(fail_n(&t, "198.51.100.1", 1, &now), 2000, "1 ms short of ten minutes: still counted");
    now += DT_THROTTLE_FORGET_MS;
    uint32_t failures;
    is_int(dt_admin_throttle_failed(&t, "198.51.100.1", now, &failures), 0,
           "after ten quiet minutes: forgotten");
    is_int(failures, 1, "counted from one again");
    dt_admin_throttle_dispose(&t);
}

static void test_off_and_other_limits(void)
{
    struct dt_admin_throttle t;
    dt_admin_throttle_init(&t, 0);
    uint64_t now = T0;
    is_int(fail_n(&t, "192.0.2.1", 1000, &now), 0, "limit 0: never held");
    is_int(dt_admin_throttle_wait(&t, "192.0.2.1", now), 0, "never waits");
    is_int(t.n, 0, "nothing tracked");
    dt_admin_throttle_dispose(&t);
    dt_admin_throttle_init(&t, 1);
    is_int(dt_admin_throttle_failed(&t, "192.0.2.1", now, NULL), 1000, "limit 1: the first holds");
    dt_admin_throttle_dispose(&t);
}

static void test_the_table_is_bounded(void)
{
    struct dt_admin_throttle t;
    dt_admin_throttle_init(&t, 5);
    uint64_t now = T0;
    char peer[32];
    for (int i = 0; i < DT_THROTTLE_ADDRESSES + 100; i++) {
        snprintf(peer, sizeof(peer), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        dt_admin_throttle_failed(&t, peer, now + (uint64_t)i, NULL);
    }
    is_int(t.n, DT_THROTTLE_ADDRESSES, "at most 4,096 addresses tracked");
    uint32_t failures;
    dt_admin_throttle_failed(&t, "10.0.0.0", now + 100000, &failures);
    is_int(failures, 1, "the address quiet for longest was dropped first");
    snprintf(peer, sizeof(peer), "10.0.%d.%d", ((DT_THROTTLE_ADDRESSES + 99) >> 8) & 255,
             (DT_THROTTLE_ADDRESSES + 99) & 255);
    dt_admin_throttle_failed(&t, peer, now + 100001, &failures);
    is_int(failures, 2, "the newest was kept");
    /* forgotten addresses make room before any other */
    now += 100002 + DT_THROTTLE_FORGET_MS;
    dt_admin_throttle_failed(&t, "172.16.0.1", now, NULL);
    is_int(t.n, DT_THROTTLE_ADDRESSES, "still bounded");
    dt_admin_throttle_dispose(&t);
}

int main(void)
{
    test_held_after_the_limit_then_doubling_up_to_the_cap();
    test_nobody_else_is_held();
    test_a_good_token_or_ten_quiet_minutes_forget();
    test_off_and_other_limits();
    test_the_table_is_bounded();
    return done_testing();
}

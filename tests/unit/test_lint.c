/* Unit tests for the rule linter: each kind of finding, with its severity and line, and the
 * rule sets it must stay quiet about. */
#include "rules/rules.h"
#include "tap.h"

#include <stdlib.h>

static const time_t NOW = 1795478400; /* 2026-11-24T00:00:00Z */

/* With focus_line, only the rule on that line is looked from. */
static uint32_t focus_line;

static bool focus_on(void *ctx, const struct dt_table *t, size_t i)
{
    (void)ctx;
    return dt_table_rule(t, i)->line == focus_line;
}

/* Lints text; returns the findings as "LINE:severity:kind" lines (static buffer). */
static const char *lint(const char *text, int64_t max_age)
{
    static char out[8192];
    struct dt_table *t = dt_table_new();
    struct dt_errors e;
    dt_errors_init(&e);
    dt_log_set_level(DT_LOG_ERROR);
    if (dt_table_load_text(t, "r", dt_str_make(text, strlen(text)), &e) != 0)
        printf("# load errors: %s", e.text.ptr);
    dt_table_finish(t);
    struct dt_lint_report r = {0};
    struct dt_lint_options o = {
        .now = NOW, .max_temporary_age = max_age, .focus = focus_line ? focus_on : NULL};
    dt_lint_run(t, &o, &r);
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r.n && n < sizeof(out) - 64; i++)
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%u:%s:%s\n", r.findings[i].line,
                              r.findings[i].severity == DT_LINT_ERROR ? "E" : "W",
                              r.findings[i].kind);
    dt_lint_report_dispose(&r);
    dt_errors_dispose(&e);
    dt_table_free(t);
    return out;
}

static void focus(void)
{
    /* a loop between lines 1 and 2, a chain from 3 into it, a chain 4 -> 5 -> 6 */
    const char *text = "/a /b\n/b /a\n/c /a\n/d /e\n/e /f\n/f https://x.example/ 307 "
                       "since=2020-01-01\n";
    focus_line = 1;
    is_str(lint(text, 86400), "1:E:loop\n2:E:loop\n", "focus: a loop through the rule");
    focus_line = 3;
    is_str(lint(text, 86400), "1:E:loop\n2:E:loop\n",
           "focus: a walk from the rule finds the loop it leads into (reported where it is)");
    focus_line = 4;
    is_str(lint(text, 86400), "4:W:chain\n", "focus: the chain from the rule only");
    focus_line = 6;
    is_str(lint(text, 86400), "6:W:old-temporary\n", "focus: per-rule findings of the rule");
    focus_line = 0;
    is_str(lint(text, 86400), "1:E:loop\n2:E:loop\n4:W:chain\n5:W:chain\n6:W:old-temporary\n",
           "without focus: everything");
}

int main(void)
{
    focus();
    is_str(lint("/a /b\n/b /c\n/c /d\n", -1), "1:W:chain\n2:W:chain\n",
           "chains: /a -> /b -> /c -> /d, and /b -> /c -> /d");
    is_str(lint("/a /b\n/b /a\n", -1), "1:E:loop\n2:E:loop\n", "a loop of two");
    is_str(lint("/a /a\n", -1), "1:E:loop\n", "a rule that sends to itself");
    is_str(lint("/x/* /y/:splat\n/y/* /x/:splat\n", -1), "1:E:loop\n2:E:loop\n",
           "a loop through prefixes");
    is_str(lint("a.example/* https://b.example/:splat\nb.example/* http://a.example/:splat\n", -1),
           "1:E:loop\n2:E:loop\n", "a loop across hosts");
    is_str(lint("/p/:id /q/:id\n/q/* /p/:splat\n", -1), "1:E:loop\n2:E:loop\n",
           "a loop through a pattern");
    is_str(lint("/a /b\n/b https://elsewhere.example/\n", -1), "1:W:chain\n",
           "a chain that leaves the site ends there");
    is_str(lint("/a /b\n/a /b\n", -1), "2:W:duplicate\n", "a duplicate");
    is_str(lint("/a /b\n/a /c 308\n", -1), "2:E:conflict\n", "a conflict");
    is_str(lint("/a /b until=2030-01-01\n/a /c\n", -1), "",
           "a windowed rule before a fallback is no conflict");
    is_str(lint("/a?x=1 /b\n/a /c\n", -1), "", "a query condition before the plain rule");
    is_str(lint("/u/:id /v/:id\n/u/:name /w/:name\n", -1), "2:E:conflict\n",
           "patterns that differ only by placeholder names");
    is_str(lint("/users/* /people\n/users/:id /u/:id\n", -1), "2:W:shadowed\n",
           "a pattern under a prefix never answers");
    is_str(lint("/* https://www.example/all\n~^/item/ /x\n", -1), "2:W:shadowed\n",
           "a regex under a catch-all never answers");
    is_str(lint("/* /all\n", -1), "1:E:loop\n", "a catch-all to a path it catches loops");
    is_str(lint("/* https://new.example/\n", -1), "",
           "a catch-all to another site is no loop: nothing says that site comes here");
    is_str(lint("/* https://new.example/\nnew.example/* https://old.example/\n"
                "old.example/* https://new.example/\n",
                -1),
           "2:E:loop\n3:E:loop\n", "but a site the rules name does come here");
    is_str(lint("/users/* /people until=2030-01-01\n/users/:id /u/:id\n", -1), "",
           "a prefix with a window shadows nothing for good");
    is_str(lint("/go/* /:splat\n", -1), "1:W:steerable\n", "a path target all request");
    is_str(lint("~^/r/(.*)$ /$1\n", -1), "1:W:steerable\n", "a regex target all request");
    is_str(lint("/go/* /x/:splat\n", -1), "", "a fixed start is not steerable");
    is_str(lint("/login/* https://auth.example/?next=:splat\n", -1), "1:W:open-redirect\n",
           "a request value in a query");
    is_str(lint("/a /b until=2026-01-01\n/c /d from=2026-01-01 until=2027-01-01\n", -1),
           "1:W:expired\n", "an expired window (the other is current)");
    is_str(lint("/t /u since=2026-09-01\n/p /q 308 since=2020-01-01\n/r /s since=2026-11-01\n",
                30 * 86400),
           "1:W:old-temporary\n", "S10: a 307 older than the age; not a 308, not a young one");
    is_str(lint("/t /u since=2026-09-01\n", -1), "", "S10: age check off");
    is_str(lint("/a /b\n.shop.example/old /a\n", -1), "2:W:chain\n",
           "a .host rule is reported once though it is two rules");
    is_str(lint(".shop.example/* /a\n", -1), "1:E:loop\n",
           "a host's catch-all to a path on the same host loops");
    is_str(lint("/old/url/* /new/url\n/docs/* /manual/:splat 308\n", -1), "",
           "a clean rule set has nothing to say");
    return done_testing();
}

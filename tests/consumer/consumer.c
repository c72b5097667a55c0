/* consumer: a program that uses detour's client library as an outside user would: only the
 * installed header, only the shared library. Prints the C8 constant and fetches nothing. */
#include <detour/client.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    struct dt_client_policy p;
    dt_client_policy_init(&p);
    if (DETOUR_TEMPORARY_REDIRECT != 307 ||
        strcmp(dt_client_reason(DETOUR_TEMPORARY_REDIRECT), "Temporary Redirect") != 0 ||
        p.max_redirs != 20 || !dt_client_method_safe("GET") || dt_client_method_safe("POST")) {
        fprintf(stderr, "consumer: the library does not say what its header says\n");
        return 1;
    }
    struct dt_client_request req = {.url = "gopher://example/"};
    struct dt_client_result res;
    int rc = dt_client_fetch(&req, &p, NULL, NULL, &res);
    dt_client_result_free(&res);
    if (rc != DT_CLIENT_EINVAL) {
        fprintf(stderr, "consumer: a gopher URL should be refused, got %d\n", rc);
        return 1;
    }
    printf("%d %s\n", DETOUR_TEMPORARY_REDIRECT, dt_client_reason(DETOUR_TEMPORARY_REDIRECT));
    return 0;
}

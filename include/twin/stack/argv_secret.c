/*
 * Loaded with LD_PRELOAD into a server whose only way to take a secret is its command line
 * (Triton's restricted-API key). Before main() runs, every argument holding the placeholder
 * named by TWIN_ARGV_PLACEHOLDER gets a copy with the placeholder replaced by the value of
 * TWIN_ARGV_SECRET. The server parses the copy; /proc/<pid>/cmdline (what `ps` shows every
 * local user) keeps the placeholder. Both variables and LD_PRELOAD are then removed from the
 * environment the server hands its own children.
 */
#include <stdlib.h>
#include <string.h>

static void replace_placeholder(int argc, char **argv, char **envp) {
    (void)envp;
    const char *placeholder = getenv("TWIN_ARGV_PLACEHOLDER");
    const char *secret = getenv("TWIN_ARGV_SECRET");
    if (placeholder != NULL && secret != NULL && placeholder[0] != '\0') {
        size_t p_len = strlen(placeholder);
        for (int i = 1; i < argc; i++) {
            char *hit = strstr(argv[i], placeholder);
            if (hit == NULL) {
                continue;
            }
            size_t prefix = (size_t)(hit - argv[i]);
            const char *rest = hit + p_len;
            char *copy = malloc(prefix + strlen(secret) + strlen(rest) + 1);
            if (copy == NULL) {
                abort();
            }
            memcpy(copy, argv[i], prefix);
            strcpy(copy + prefix, secret);
            strcat(copy, rest);
            argv[i] = copy;
        }
    }
    unsetenv("TWIN_ARGV_SECRET");
    unsetenv("TWIN_ARGV_PLACEHOLDER");
    unsetenv("LD_PRELOAD");
}

__attribute__((section(".init_array"), used)) static void (*const twin_argv_init)(
    int, char **, char **) = replace_placeholder;

/* ccvm's argv: its own flags out, the agent's arguments through untouched. */
#include "options/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct {
	const char *flag;
	enum cli_mode mode;
} mode_flags[] = {
    {"--shell", CLI_RUN_SHELL},
    {"--ccvm-dump-config", CLI_DUMP_CONFIG},
    {"--ccvm-build", CLI_BUILD},
    {"--ccvm-images", CLI_IMAGES},
    {"--ccvm-prune", CLI_PRUNE},
    {"--ccvm-doctor", CLI_DOCTOR},
    {"--ccvm-egress", CLI_EGRESS},
    {"--ccvm-egress-suggest", CLI_EGRESS_SUGGEST},
};

static const char *mode_flag(enum cli_mode m)
{
	for (size_t i = 0; i < ARRAY_LEN(mode_flags); i++)
		if (mode_flags[i].mode == m)
			return mode_flags[i].flag;
	return "";
}

static bool egress_mode(enum cli_mode m)
{
	return m == CLI_EGRESS || m == CLI_EGRESS_SUGGEST;
}

/* Records the first usage error only. */
__attribute__((format(printf, 3, 4))) static void
usage_err(struct ccvm_err *e, bool *have, const char *fmt, ...)
{
	if (*have)
		return;
	*have = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = -EINVAL;
}

/* A mode flag (--shell, --ccvm-build, ...) sets a->mode; a second,
 * different one is an error.  false when s is no mode flag. */
static bool take_mode_flag(const char *s, struct cli_args *a,
			   struct ccvm_err *e, bool *have_err)
{
	for (size_t m = 0; m < ARRAY_LEN(mode_flags); m++) {
		if (strcmp(s, mode_flags[m].flag) != 0)
			continue;
		if (a->mode != CLI_RUN_AGENT && a->mode != mode_flags[m].mode)
			usage_err(e, have_err, "%s conflicts with %s", s,
				  mode_flag(a->mode));
		else
			a->mode = mode_flags[m].mode;
		return true;
	}
	return false;
}

/*
 * The egress modes' own arguments out of a->argv (the first before_dd
 * came before "--", which follows them when dashdash): --json, --follow / -f,
 * and the SESSION arguments, which stay.  An unknown option before "--" is an
 * error.
 */
static void egress_args(struct cli_args *a, size_t before_dd, bool dashdash,
			struct ccvm_err *e, bool *have_err)
{
	char q[256];
	size_t n = 0;
	for (size_t k = 0; k < a->argc; k++) {
		const char *s = a->argv[k];
		if (dashdash && k == before_dd) /* the "--" itself */
			continue;
		if (k < before_dd && strcmp(s, "--json") == 0) {
			a->json = true;
		} else if (k < before_dd && (strcmp(s, "--follow") == 0 ||
					     strcmp(s, "-f") == 0)) {
			a->follow = true;
		} else if (k < before_dd && s[0] == '-' && s[1] != '\0') {
			usage_err(e, have_err,
				  "%s: unknown option %s (it takes --json, "
				  "--follow and SESSION)",
				  mode_flag(a->mode),
				  util_escape(q, sizeof(q), s, true));
		} else {
			a->argv[n++] = a->argv[k];
		}
	}
	a->argc = n;
	if (a->mode == CLI_EGRESS_SUGGEST && (a->json || a->follow))
		usage_err(e, have_err,
			  "--ccvm-egress-suggest takes no --json or --follow "
			  "(its output is JSON already)");
	if (a->mode == CLI_EGRESS && a->argc > 1)
		usage_err(e, have_err,
			  "--ccvm-egress takes one SESSION, got %zu "
			  "(--ccvm-egress-suggest merges several)",
			  a->argc);
}

int cli_parse(int argc, char **argv, struct cli_args *out, struct ccvm_err *err)
{
	struct cli_args a = {.mode = CLI_RUN_AGENT, .writable = -1};
	size_t nargs = argc > 1 ? (size_t)argc - 1 : 0;
	/* Room for every argument and the NULL. */
	a.argv = calloc(nargs + 1, sizeof(*a.argv));
	if (!a.argv)
		return ccvm_err_set(err, ENOMEM, "out of memory");

	struct ccvm_err e = {0};
	bool have_err = false, help = false, version = false;
	bool stray = false; /* an agent argument before "--" */
	char q[256];
	int i;
	for (i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--") == 0)
			break;
		if (strcmp(s, "--ccvm-help") == 0) {
			help = true;
		} else if (strcmp(s, "--ccvm-version") == 0) {
			version = true;
		} else if (strcmp(s, "--writable-cwd") == 0) {
			a.writable = 1;
		} else if (strcmp(s, "--read-only-cwd") == 0) {
			a.writable = 0;
		} else if (strcmp(s, "--ccvm-debug") == 0) {
			a.debug = true;
		} else if (strncmp(s, "--ccvm-egress=", 14) == 0 ||
			   strncmp(s, "--ccvm-egress-suggest=", 22) == 0) {
			/* The flag with one SESSION. */
			const char *eq = strchr(s, '=');
			char flag[32];
			snprintf(flag, sizeof(flag), "%.*s", (int)(eq - s), s);
			take_mode_flag(flag, &a, &e, &have_err);
			if (eq[1] == '\0')
				usage_err(&e, &have_err, "%s= needs a SESSION",
					  flag);
			else
				a.argv[a.argc++] = (char *)eq + 1;
		} else {
			if (take_mode_flag(s, &a, &e, &have_err))
				continue;
			if (strncmp(s, "--ccvm-", 7) == 0) {
				usage_err(&e, &have_err,
					  "unknown flag %s (see ccvm "
					  "--ccvm-help; put it after -- to "
					  "pass it to the agent)",
					  util_escape(q, sizeof(q), s, false));
				continue;
			}
			stray = true;
			a.argv[a.argc++] = argv[i];
		}
	}
	bool dashdash = i < argc;
	size_t before_dd = a.argc;
	if (a.mode == CLI_RUN_SHELL) {
		if (stray)
			usage_err(&e, &have_err,
				  "--shell takes a command only after --: "
				  "ccvm --shell -- CMD ARGS...");
		/* The "--" is consumed; the rest is the command. */
		for (i++; i < argc; i++)
			a.argv[a.argc++] = argv[i];
	} else {
		for (; i < argc; i++)
			a.argv[a.argc++] = argv[i];
	}
	if (egress_mode(a.mode))
		egress_args(&a, before_dd, dashdash, &e, &have_err);
	else if (a.mode != CLI_RUN_AGENT && a.mode != CLI_RUN_SHELL &&
		 (a.argc > 0 || dashdash))
		usage_err(
		    &e, &have_err, "%s takes no other arguments, got %s",
		    mode_flag(a.mode),
		    util_escape(q, sizeof(q), a.argc ? a.argv[0] : "--", true));
	a.argv[a.argc] = NULL;

	if (help || version) {
		a.mode = help ? CLI_HELP : CLI_VERSION;
	} else if (have_err) {
		free(a.argv);
		return ccvm_err_set(err, EINVAL, "%s", e.msg);
	}
	*out = a;
	return 0;
}

void cli_free(struct cli_args *a)
{
	if (!a)
		return;
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
}

void cli_usage(FILE *out)
{
	fputs(
	    "Usage: ccvm [CCVM FLAGS] [AGENT ARGS...]\n"
	    "       ccvm --shell [-- CMD ARGS...]\n"
	    "\n"
	    "Runs the Claude Code agent in a throw-away VM that sees only "
	    "the current\n"
	    "directory.  ccvm's flags are recognised anywhere before a "
	    "literal \"--\";\n"
	    "every other argument (--help and --version too) goes to the "
	    "agent, as do\n"
	    "\"--\" and everything after it.\n"
	    "\n"
	    "Flags:\n"
	    "  --writable-cwd       the VM may change the current directory "
	    "(default)\n"
	    "  --read-only-cwd      the VM sees the directory read-only (last "
	    "of the two wins)\n"
	    "  --shell              a login shell in the VM instead of the "
	    "agent;\n"
	    "                       --shell -- CMD ARGS runs CMD and returns "
	    "its exit code\n"
	    "  --ccvm-debug         stream the guest console to stderr\n"
	    "  --ccvm-dump-config   print the resolved options as JSON (a "
	    "valid config file)\n"
	    "  --ccvm-build         build the guest image if it is missing\n"
	    "  --ccvm-images        list cached guest images\n"
	    "  --ccvm-prune         delete cached images other than the "
	    "current one\n"
	    "  --ccvm-doctor        check what a session needs on this host\n"
	    "  --ccvm-egress [--json] [--follow|-f] [SESSION]\n"
	    "                       summarise a session's egress log (default "
	    "the newest;\n"
	    "                       SESSION: an id, a unique prefix or a "
	    "path; --json: the\n"
	    "                       lines as they are; --follow: as they "
	    "come, until Ctrl-C)\n"
	    "  --ccvm-egress-suggest [SESSION...]\n"
	    "                       print an egressAllowlist and egressPorts "
	    "that would have\n"
	    "                       allowed what those sessions did (default "
	    "the newest)\n"
	    "  --ccvm-help          this text\n"
	    "  --ccvm-version       print the version\n"
	    "Any other --ccvm-* argument is an error.\n"
	    "\n"
	    "Exit status: the agent's (or the command's); 2 for a usage, "
	    "config or\n"
	    "environment error; 125 when ccvm or the VM fails.\n"
	    "\n",
	    out);
}

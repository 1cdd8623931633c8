/* ccvm: split argv, resolve the options, then run the chosen mode. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options/cli.h"
#include "options/config.h"
#include "util.h"
#include "doctor.h"
#include "image/image.h"
#include "net/audit.h"
#include "net/audit_report.h"
#include "net/audit_suggest.h"
#include "net/route.h"
#include "sys/procs.h"
#include "term/say.h"
#include "session/session.h"

extern char **environ;

static int fail(const struct ccvm_err *err, int status)
{
	say("%s", err->msg[0] ? err->msg : "failed");
	return status;
}

static void print_help(void)
{
	cli_usage(stdout);
	cfg_usage(stdout, environ);
	puts("Documentation: man ccvm; README.md, docs/options.md and, when "
	     "something is in\nthe way, docs/troubleshooting.md in the ccvm "
	     "sources (installed under\nshare/doc/ccvm); ccvm --ccvm-doctor "
	     "checks this host.");
}

/*
 * `ccvm --help` or `ccvm --version` (the agent's, as in the reference)
 * while there is no guest image yet: rather than building one unasked to
 * show the agent's help, ccvm shows its own, and says so.  1 when it
 * answered, 0 when the session should run.
 */
static int answer_without_image(const struct ccvm_config *cfg,
				const struct cli_args *a)
{
	if (a->mode != CLI_RUN_AGENT || a->argc != 1)
		return 0;
	const char *w = a->argv[0];
	bool help = !strcmp(w, "--help") || !strcmp(w, "-h");
	bool version = !strcmp(w, "--version") || !strcmp(w, "-v");
	if (!help && !version)
		return 0;
	char dir[4096];
	bool complete = false;
	if (image_lookup(cfg, dir, &complete, &(struct ccvm_err){0}) < 0 ||
	    complete)
		return 0;
	if (help)
		print_help();
	else
		puts("ccvm " CCVM_VERSION);
	say("no guest image for these options yet, so this is ccvm's own %s, "
	    "not the agent's: the first session builds the image, %s; "
	    "`ccvm --ccvm-build` builds all of it now, %s",
	    help ? "help" : "version", IMAGE_BUILD_ESTIMATE_SESSION,
	    IMAGE_BUILD_ESTIMATE_ALL);
	return 1;
}

/* --ccvm-build, --ccvm-images, --ccvm-prune. */
static int run_image_mode(const struct ccvm_config *cfg, enum cli_mode mode,
			  struct ccvm_err *err)
{
	int r;
	if (mode == CLI_BUILD) {
		struct image_paths p;
		r = image_ensure(cfg, IMAGE_BUILD_ALL, &p, err);
		if (r == 0)
			printf("image %s\nkernel %s\ninitrd %s\nrootfs %s\n",
			       p.dir, p.kernel, p.initrd, p.rootfs);
	} else if (mode == CLI_IMAGES) {
		r = image_list(cfg, stdout, err);
	} else {
		r = image_prune(cfg, stdout, err);
	}
	if (fflush(stdout) != 0 && r == 0)
		r = ccvm_err_sys(err, EIO, "writing to stdout");
	return r < 0 ? fail(err, image_interrupt_status()
				     ? image_interrupt_status()
				     : CCVM_EXIT_FAILURE)
		     : 0;
}

static volatile sig_atomic_t egress_stop;

static void on_sigint(int sig)
{
	(void)sig;
	egress_stop = 1;
}

/* Opens the log SESSION names in dir (read-only, a regular file). */
static FILE *egress_open(const char *dir, const char *session,
			 struct ccvm_err *err)
{
	autofree char *path = NULL;
	if (audit_report_find(dir, session, &path, err) < 0)
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = fd < 0 ? errno : EINVAL;
		if (fd >= 0)
			close(fd);
		ccvm_err_sys(err, e, "egress log %s", path);
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		ccvm_err_sys(err, errno, "egress log %s", path);
		close(fd);
	}
	return f;
}

/* --ccvm-egress and --ccvm-egress-suggest: read the logs, no session.
 * 1 when there is no log or nothing to suggest. */
static int run_egress_mode(const struct cli_args *a, struct ccvm_err *err)
{
	char dir[4096];
	if (audit_dir(dir, sizeof(dir), err) < 0)
		return fail(err, 1);
	int r = 0;
	if (a->mode == CLI_EGRESS) {
		autofclose FILE *in =
		    egress_open(dir, a->argc ? a->argv[0] : NULL, err);
		if (!in)
			return fail(err, 1);
		if (a->follow) {
			struct sigaction sa = {.sa_handler = on_sigint};
			sigemptyset(&sa.sa_mask);
			sigaction(SIGINT, &sa, NULL);
			r = audit_report_follow(in, stdout, a->json,
						&egress_stop, err);
		} else if (a->json) {
			char buf[65536];
			size_t n;
			while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
				fwrite(buf, 1, n, stdout);
			if (ferror(in))
				r = ccvm_err_sys(err, EIO, "reading the log");
		} else {
			struct audit_summary *s = audit_summary_new();
			r = !s ? ccvm_err_set(err, ENOMEM, "out of memory")
			    : audit_summary_read(s, in) < 0
				? ccvm_err_sys(err, EIO, "reading the log")
				: audit_summary_print(s, stdout);
			audit_summary_free(s);
		}
		return r < 0 ? fail(err, CCVM_EXIT_FAILURE) : 0;
	}
	struct audit_suggest *s = audit_suggest_new(route_is_local);
	if (!s) {
		ccvm_err_set(err, ENOMEM, "out of memory");
		return fail(err, CCVM_EXIT_FAILURE);
	}
	size_t n = a->argc ? a->argc : 1;
	for (size_t i = 0; i < n && r == 0; i++) {
		FILE *in = egress_open(dir, a->argc ? a->argv[i] : NULL, err);
		if (!in) {
			audit_suggest_free(s);
			return fail(err, 1);
		}
		if (audit_suggest_read(s, in) < 0)
			r = ccvm_err_sys(err, EIO, "reading the log");
		fclose(in);
	}
	if (r == 0)
		r = audit_suggest_write(s, stdout, stderr, "ccvm: ", err);
	audit_suggest_free(s);
	if (r == -ENODATA)
		return fail(err, 1);
	return r < 0 ? fail(err, CCVM_EXIT_FAILURE) : 0;
}

/* One line per CCVM_* variable ccvm does not read: a typo would
 * otherwise be ignored in silence. */
static void warn_unknown_env(void)
{
	char name[128], q[4 * 128 + 8];
	const char *hint = NULL;
	size_t i = 0;
	while (cfg_env_unknown(environ, &i, name, sizeof(name), &hint)) {
		util_escape(q, sizeof(q), name, false);
		if (hint)
			say("warning: %s is not a ccvm variable and is "
			    "ignored; "
			    "did you mean %s?",
			    q, hint);
		else
			say("warning: %s is not a ccvm variable and is ignored "
			    "(ccvm --ccvm-help lists them)",
			    q);
	}
}

int main(int argc, char **argv)
{
	struct ccvm_err err = {0};
	/* Before anything: no core file, no ptrace, and every process
	 * ccvm's children leave behind is ccvm's to wait for. */
	if (procs_harden(&err) < 0)
		return fail(&err, CCVM_EXIT_FAILURE);
	struct cli_args args;
	if (cli_parse(argc, argv, &args, &err) < 0)
		return fail(&err, CCVM_EXIT_USAGE);

	int status = 0;
	struct ccvm_config cfg = {0};
	if (args.mode == CLI_HELP) {
		print_help();
		goto out;
	}
	if (args.mode == CLI_VERSION) {
		puts("ccvm " CCVM_VERSION);
		goto out;
	}
	warn_unknown_env();
	bool env_debug = false;
	if (cfg_env_debug(environ, &env_debug, &err) < 0) {
		status = fail(&err, CCVM_EXIT_USAGE);
		goto out;
	}
	args.debug = args.debug || env_debug;
	/* The log readers need no options and no image, and work as root. */
	if (args.mode == CLI_EGRESS || args.mode == CLI_EGRESS_SUGGEST) {
		status = run_egress_mode(&args, &err);
		goto out;
	}
	/* The doctor reports running as root as one of its checks. */
	if (args.mode != CLI_DUMP_CONFIG && args.mode != CLI_DOCTOR &&
	    cfg_check_root((unsigned)geteuid(), environ, &err) < 0) {
		status = fail(&err, CCVM_EXIT_USAGE);
		goto out;
	}
	if (cfg_resolve(&cfg, &args, environ, &err) < 0) {
		status = fail(&err, CCVM_EXIT_USAGE);
		goto out;
	}
	switch (args.mode) {
	case CLI_DUMP_CONFIG: {
		char *json = NULL;
		if (cfg_dump_json(&cfg, CFG_DUMP_PRETTY, &json, &err) < 0) {
			status = fail(&err, CCVM_EXIT_FAILURE);
			break;
		}
		fputs(json, stdout);
		free(json);
		break;
	}
	case CLI_DOCTOR: {
		bool ready = false;
		if (doctor_run(&cfg, stdout, &ready, &err) < 0)
			status = fail(&err, CCVM_EXIT_FAILURE);
		else
			status = ready ? 0 : 1;
		break;
	}
	case CLI_BUILD:
	case CLI_IMAGES:
	case CLI_PRUNE:
		status = run_image_mode(&cfg, args.mode, &err);
		break;
	default:
		if (answer_without_image(&cfg, &args))
			break;
		status = session_run(&cfg, &args, &err);
		if (err.msg[0])
			say("%s", err.msg);
		if (status < 0 || status > 255)
			status = CCVM_EXIT_FAILURE;
		break;
	}
out:
	if (fflush(stdout) != 0 && status == 0)
		status = CCVM_EXIT_FAILURE;
	cfg_free(&cfg);
	cli_free(&args);
	/* Nothing ccvm started outlives it. */
	procs_reap_all();
	return status;
}

/* ccvm: split argv, resolve the options, then run the chosen mode. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "options/cli.h"
#include "options/config.h"
#include "doctor.h"
#include "image/image.h"
#include "sys/procs.h"
#include "term/say.h"
#include "session/session.h"

extern char **environ;

static int fail(const struct ccvm_err *err, int status)
{
	say("%s", err->msg[0] ? err->msg : "failed");
	return status;
}

/* --ccvm-build, --ccvm-images, --ccvm-prune. */
static int run_image_mode(const struct ccvm_config *cfg, enum cli_mode mode,
			  struct ccvm_err *err)
{
	int r;
	if (mode == CLI_BUILD) {
		struct image_paths p;
		r = image_ensure(cfg, true, &p, err);
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
	return r < 0 ? fail(err, CCVM_EXIT_FAILURE) : 0;
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
		cli_usage(stdout);
		cfg_usage(stdout, environ);
		puts(
		    "Documentation: man ccvm; README.md and docs/options.md in "
		    "the ccvm sources.");
		goto out;
	}
	if (args.mode == CLI_VERSION) {
		puts("ccvm " CCVM_VERSION);
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

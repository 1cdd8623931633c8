/*
 * One session: start QEMU with the guest image, answer the guest init's
 * HELLO with the session's setup, relay the terminal until the guest
 * reports the program's exit, and leave nothing behind.
 *
 * check (check.c) -> plan and start (plan.c, start.c) -> relay (relay.c)
 * -> report and teardown (teardown.c).
 *
 * Nothing touches the file system: the control channel is one end of a
 * socketpair handed to QEMU as an inherited fd, and so is the serial
 * console.  QEMU dies with us (PR_SET_PDEATHSIG), even on SIGKILL.
 */
#include "session/session.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "session/internal.h"
#include "sys/procs.h"

static struct session *session_new(const struct ccvm_config *cfg,
				   const struct cli_args *args)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	s->args = args;
	session_take_credentials(s);
	s->sigfd = s->ctl = s->con = s->qerr = s->scratch = s->ram = -1;
	for (int i = 0; i < 2; i++)
		s->ctlp[i] = s->conp[i] = s->netp[i] = s->errp[i] = -1;
	s->vfs.qemu_fd = -1;
	s->egress_summary = -1;
	s->stdin_open = true;
	park_boot_init(&s->park, (uint64_t)cfg->memory_mib << 20, args->debug);
	s->rd = malloc(sizeof(*s->rd));
	return s;
}

static void session_free(struct session *s)
{
	egress_policy_free(s->egress);
	free(s->api_url);
	session_api_free(s);
	qemu_argv_free(&s->qa);
	proto_writer_free(&s->wr);
	stage_list_free(&s->staged);
	procs_secret_free();
	free(s->rd);
	free(s);
}

static int run(const struct ccvm_config *cfg, const struct cli_args *args,
	       const struct places *pl, struct ccvm_err *err)
{
	struct session *s = session_new(cfg, args);
	if (!s) {
		procs_secret_free();
		ccvm_err_sys(err, ENOMEM, "session");
		return CCVM_EXIT_FAILURE;
	}
	int code = session_check(s, pl, err);
	if (code == 0) {
		code = session_start(s, pl, err);
		if (code == 0) {
			code = session_relay(s, err);
			session_report(s, code);
		}
		session_teardown(s);
	}
	session_free(s);
	return code;
}

int session_run(const struct ccvm_config *cfg, const struct cli_args *args,
		struct ccvm_err *err)
{
	/* The secret places of $HOME and of the passwd entry's home. */
	struct passwd *pw = getpwuid(getuid());
	struct places pl;
	if (places_init(&pl, getenv("HOME"), pw ? pw->pw_dir : NULL,
			getenv("XDG_CONFIG_HOME")) < 0) {
		ccvm_err_sys(err, ENOMEM, "session");
		return CCVM_EXIT_FAILURE;
	}
	int code = run(cfg, args, &pl, err);
	places_free(&pl);
	return code;
}

/*
 * ccvm's guest kernel, later (issue 25 item 1): a session's first image
 * boots Debian's stock kernel at once while ccvm's own kernel builds in
 * the background (nice 19, one at a time: kernels/.lock, outliving the
 * session); the next session after it is done switches the image to it.
 * `--ccvm-build` builds it in the foreground instead (docs/getting-started.md,
 * "The first run").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "image/image.h"
#include "image/image_build.h"
#include "sys/procs.h"
#include "term/say.h"
#include "util.h"

/* The key of the kernel dir's image waits for (manifest.json's
 * kernelPending), or false. */
static bool kernel_pending(const char *dir, char key[65])
{
	autofree char *mp = util_path_join(dir, "manifest.json");
	json_error_t je;
	json_t *m = mp ? json_load_file(mp, 0, &je) : NULL;
	const char *k = json_string_value(json_object_get(m, "kernelPending"));
	bool ok = k && image_is_key(k);
	if (ok)
		snprintf(key, 65, "%s", k);
	json_decref(m);
	return ok;
}

/* kernels/build.log, emptied, for a kernel build; its path in *log. */
static int kernel_log_open(const char *kernels, char **log)
{
	*log = util_path_join(kernels, "build.log");
	return *log ? open(*log,
			   O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			   0600)
		    : -ENOMEM;
}

/*
 * Starts the background build of the guest kernel (the lock held, a
 * child in a session of its own, nice 19, its output in kernels/build.log;
 * it outlives ccvm: procs_keep).  Says so in one line, or that one is
 * running already.
 */
static void kernel_background(const char *images, const char *kernels)
{
	int lock = image_kernels_lock(kernels, false);
	if (lock == -EWOULDBLOCK) {
		say("ccvm's own guest kernel is still being built in the "
		    "background (%s/build.log); this session boots Debian's "
		    "stock kernel",
		    kernels);
		return;
	}
	autofree char *log = NULL;
	int logfd = lock >= 0 ? kernel_log_open(kernels, &log) : -1;
	pid_t pid = logfd >= 0 ? fork() : -1;
	if (pid == 0) {
		/* Nothing of the session's: no secret (the API key ccvm may
		 * hold), its own session (no terminal signal reaches it), no
		 * fds but the log and the lock. */
		procs_forget_secrets();
		setsid();
		if (setpriority(PRIO_PROCESS, 0, 19) < 0) {
			/* nice it stays, as make runs under nice too */
		}
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGINT, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGHUP, &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != logfd && fd != lock)
				close(fd);
		struct ccvm_err e = {0};
		int r = image_kernel_build(images, logfd, log, &e);
		if (r < 0)
			dprintf(logfd, "ccvm: %s\n", e.msg);
		_exit(r < 0 ? 1 : 0);
	}
	if (pid > 0) {
		procs_keep(pid);
		say("building ccvm's own guest kernel in the background (pid "
		    "%d, nice 19, about 10 minutes on 2 idle cores; log: %s); "
		    "sessions boot Debian's stock kernel until the next one "
		    "after it is done",
		    (int)pid, log);
	}
	if (logfd >= 0)
		close(logfd);
	if (lock >= 0)
		close(lock);
}

/*
 * An image waiting for ccvm's guest kernel (kernelPending): with the
 * kernel there, the image switches to it (under the images lock); for a
 * session, else, its background build starts (if none runs); for
 * --ccvm-build, it is built now.  Problems leave the image as it is; an
 * interrupted --ccvm-build is -EINTR.
 */
int image_kernel_catch_up(const char *images, const char *dir,
			  enum image_want want, struct ccvm_err *err)
{
	char kkey[65], kernels[PATH_MAX];
	if (!kernel_pending(dir, kkey) ||
	    image_kernels_dir(images, kernels) < 0)
		return 0;
	autofree char *kdir = util_path_join(kernels, kkey);
	autofree char *kv = util_path_join(kdir ? kdir : "", "vmlinux");
	autofree char *failed = util_asprintf("%s/%s.failed", kernels, kkey);
	if (!kdir || !kv || !failed)
		return 0;
	if (access(kv, R_OK) != 0 && access(failed, F_OK) == 0) {
		say("ccvm's own guest kernel failed to build (%s/"
		    "failed-build.log); "
		    "sessions boot Debian's stock kernel (remove %s to try "
		    "again)",
		    kernels, failed);
		return 0;
	}
	if (access(kv, R_OK) != 0 && want == IMAGE_SESSION) {
		kernel_background(images, kernels);
		return 0;
	}
	struct ccvm_err e = {0};
	if (access(kv, R_OK) != 0) { /* --ccvm-build: now */
		struct image_sigsave ss;
		image_signals_catch(&ss);
		int lock = image_kernels_lock(kernels, false);
		if (lock == -EWOULDBLOCK) {
			say("waiting for the guest kernel being built in the "
			    "background (log: %s/build.log)",
			    kernels);
			lock = image_kernels_lock(kernels, true);
		}
		autofree char *log = NULL;
		int logfd = lock >= 0 ? kernel_log_open(kernels, &log) : -1;
		int r = logfd < 0 ? -EIO
				  : image_kernel_build(images, logfd, log, &e);
		if (logfd >= 0)
			close(logfd);
		if (lock >= 0)
			close(lock);
		image_signals_restore(&ss);
		if (r < 0 && image_interrupted)
			return ccvm_err_set(err, EINTR,
					    "image build interrupted; nothing "
					    "kept");
		if (r < 0) {
			say("ccvm's own guest kernel: %s; the image keeps "
			    "Debian's stock kernel",
			    e.msg[0] ? e.msg : "cannot build it");
			return 0;
		}
	}
	int lock = image_lock(images, &e);
	if (lock < 0)
		return 0;
	if (kernel_pending(dir, kkey) && access(kv, R_OK) == 0) {
		if (image_kernel_upgrade(dir, kdir, &e) == 0)
			say("the guest image now boots ccvm's own kernel; "
			    "its saved boot is made again");
		else
			say("switching the guest image to ccvm's own kernel: "
			    "%s; it keeps Debian's stock kernel",
			    e.msg);
	}
	close(lock);
	return 0;
}

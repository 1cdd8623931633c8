/* TEMPORARY: see main_image_tmp.h.  Uses built-in defaults only. */
#include "main_image_tmp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int image_tmp_main(int argc, char **argv)
{
	struct ccvm_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.agent_sudo = -1;
	cfg.package = NULL; /* CCVM_DEFAULT_PACKAGE */
	/* Manual testing only: a few build-time options from the
	 * environment, comma-separated lists. */
	static char *pk[16], *mods[16];
	char *e = getenv("CCVM_TMP_EXTRA_PACKAGES");
	for (char *t = e ? strtok(e, ",") : NULL;
	     t && cfg.extra_packages.n < 16; t = strtok(NULL, ","))
		pk[cfg.extra_packages.n++] = t;
	cfg.extra_packages.v = pk;
	e = getenv("CCVM_TMP_GUEST_MODULES");
	for (char *t = e ? strtok(e, ",") : NULL;
	     t && cfg.extra_guest_modules.n < 16; t = strtok(NULL, ","))
		mods[cfg.extra_guest_modules.n++] = t;
	cfg.extra_guest_modules.v = mods;
	e = getenv("CCVM_TMP_AGENT_SUDO");
	if (e)
		cfg.agent_sudo = atoi(e);
	struct ccvm_err err = {0};
	struct image_paths p;
	int r = -1;
	if (argc == 2 && !strcmp(argv[1], "--ccvm-build")) {
		r = image_ensure(&cfg, true, &p, &err);
		if (r == 0)
			printf("kernel %s\ninitrd %s\nrootfs %s\n", p.kernel,
			       p.initrd, p.rootfs);
	} else if (argc == 2 && !strcmp(argv[1], "--ccvm-image-paths")) {
		r = image_ensure(&cfg, false, &p, &err);
		if (r == 0)
			printf("kernel %s\ninitrd %s\nrootfs %s\n", p.kernel,
			       p.initrd, p.rootfs);
	} else if (argc == 2 && !strcmp(argv[1], "--ccvm-images")) {
		r = image_list(&cfg, stdout, &err);
	} else if (argc == 2 && !strcmp(argv[1], "--ccvm-prune")) {
		r = image_prune(&cfg, stdout, &err);
	} else {
		fprintf(stderr, "ccvm: unknown option (temporary main)\n");
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "ccvm: %s\n", err.msg);
		return r == -EINTR ? 130 : 1;
	}
	return 0;
}

/*
 * TEMPORARY: stand-ins for functions other branches implement (image.c,
 * session.c).  The lead deletes this file at merge.
 */
#include <errno.h>

#include "image.h"

int image_ensure(const struct ccvm_config *cfg, bool allow_build,
		 struct image_paths *out, struct ccvm_err *err)
{
	(void)cfg;
	(void)allow_build;
	(void)out;
	return ccvm_err_set(err, ENOSYS, "image_ensure: not implemented yet");
}

int image_list(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err)
{
	(void)cfg;
	(void)out;
	return ccvm_err_set(err, ENOSYS, "image_list: not implemented yet");
}

int image_prune(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err)
{
	(void)cfg;
	(void)out;
	return ccvm_err_set(err, ENOSYS, "image_prune: not implemented yet");
}

#pragma once
/* TEMPORARY (branch wip-image): a stand-in for the real main/cli so that
 * `ccvm --ccvm-build`, `--ccvm-images` and `--ccvm-prune` can be tested
 * before the cli/config modules land.  Drop this file and its .c when
 * main.c calls image_ensure/image_list/image_prune itself. */
int image_tmp_main(int argc, char **argv);

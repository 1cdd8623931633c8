#include <stdio.h>

#include "main_image_tmp.h"

int main(int argc, char **argv)
{
	if (argc > 1) /* TEMPORARY: image options, see main_image_tmp.h */
		return image_tmp_main(argc, argv);
	puts("ccvm " CCVM_VERSION);
	return 0;
}

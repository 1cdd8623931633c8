#include <stdio.h>

int main(void)
{
	puts("ccvm " CCVM_VERSION);
	return 0;
}

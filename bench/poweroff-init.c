/* The baseline guest for bench/run: an init that powers off at once. */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
	static const char msg[] = "bench-init\n";
	int fd = 1;
	if (write(fd, msg, sizeof(msg) - 1) < 0) {
		/* no console: still power off */
	}
	reboot(RB_POWER_OFF);
	return 0;
}

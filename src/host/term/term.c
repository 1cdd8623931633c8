#include "term/term.h"

#include "term/say.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

void term_init(struct term_state *t, int fd)
{
	t->fd = -1;
	t->saved = false;
	t->raw = false;
	if (isatty(fd) && tcgetattr(fd, &t->orig) == 0) {
		t->fd = fd;
		t->saved = true;
	}
}

int term_raw(struct term_state *t)
{
	if (!t->saved || t->raw)
		return 0;
	struct termios raw = t->orig;
	cfmakeraw(&raw);
	/* Keep output post-processing off too: the guest PTY did it. */
	if (tcsetattr(t->fd, TCSADRAIN, &raw) < 0)
		return -errno;
	t->raw = true;
	say_set_raw(true);
	return 0;
}

void term_restore(struct term_state *t)
{
	if (t->saved && t->raw) {
		tcsetattr(t->fd, TCSADRAIN, &t->orig);
		t->raw = false;
		say_set_raw(false);
	}
}

bool term_size(int fd, unsigned *rows, unsigned *cols)
{
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0 || ws.ws_col == 0)
		return false;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return true;
}

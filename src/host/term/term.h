#pragma once
/* The host terminal: raw mode for a session, restored on every path. */
#include <stdbool.h>
#include <termios.h>

struct term_state {
	int fd;	    /* the terminal (stdin), or -1 */
	bool saved; /* orig holds the mode to restore */
	bool raw;   /* raw mode is on now */
	struct termios orig;
};

/* Remembers fd's mode; no-op (fd = -1) when fd is not a terminal. */
void term_init(struct term_state *t, int fd);
int term_raw(struct term_state *t);
void term_restore(struct term_state *t);
/* Window size of fd; false when unknown. */
bool term_size(int fd, unsigned *rows, unsigned *cols);

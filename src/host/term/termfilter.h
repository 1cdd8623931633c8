#pragma once
/*
 * What the guest prints, made safe for the host's terminal.
 *
 * A streaming filter that re-encodes the guest's output: text (UTF-8, a
 * broken sequence becoming U+FFFD), the C0 controls that draw, and the
 * escape sequences a full-screen program draws with (SGR, cursor and
 * screen control, the alternate screen, mouse and keyboard modes,
 * bracketed paste, synchronized output, titles, hyperlinks, colour
 * changes) pass; every other sequence is dropped whole: those that act
 * outside the window or make the terminal answer with the host's data
 * (OSC 52 clipboard, colour and font queries, title reports, window ops,
 * every DCS, APC, PM and SOS string, iTerm2's and kitty's file transfer,
 * screen checksums, printing).  C1 controls, 8-bit or UTF-8 encoded, are
 * read as their 7-bit forms and filtered the same way.
 *
 * Nothing malformed reaches the terminal: what passes is re-emitted in
 * canonical 7-bit form, so the terminal's parser can never be led into a
 * state the filter did not see.  The state survives read boundaries in a
 * fixed struct; nothing is allocated.  TERMFILTER_TEXT drops every control
 * and sequence (TAB, CR and LF become a space): for one line of
 * diagnostics.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERMFILTER_STR_MAX 4096 /* the longest OSC kept (a hyperlink) */
#define TERMFILTER_CSI_MAX 128	/* the longest CSI kept */
/* The most termfilter_run writes for n bytes in. */
#define TERMFILTER_OUT_MAX(n) (3 * (size_t)(n) + TERMFILTER_STR_MAX + 16)

enum termfilter_mode {
	TERMFILTER_TERMINAL, /* for a terminal: what draws in the window */
	TERMFILTER_TEXT,     /* plain text: no control, no sequence */
};

struct termfilter {
	uint8_t mode;
	uint8_t state;	      /* where in a sequence */
	uint8_t str;	      /* the kind of string being read */
	bool bad;	      /* the sequence is dropped at its end */
	uint8_t u8[4];	      /* a UTF-8 sequence being read */
	uint8_t u8_len;	      /* its bytes so far */
	uint8_t u8_need;      /* continuation bytes still expected */
	uint8_t u8_lo, u8_hi; /* the range of the next one */
	uint16_t len;	      /* bytes in seq */
	uint8_t seq[TERMFILTER_STR_MAX]; /* the sequence being read */
};

void termfilter_init(struct termfilter *f, enum termfilter_mode mode);

/* Filters n bytes of in into out, which has room for
 * TERMFILTER_OUT_MAX(n) bytes; returns the bytes written.  A sequence or
 * UTF-8 character cut by the end of in is held until the next call. */
size_t termfilter_run(struct termfilter *f, const void *in, size_t n,
		      uint8_t *out);

/* in as one line of plain text (TERMFILTER_TEXT) into out, NUL-terminated
 * and cut at a character's end to fit cap (> 0); returns its length. */
size_t termfilter_text(const void *in, size_t n, char *out, size_t cap);

/* The guest's output made safe for the host's terminal: termfilter.h. */
#include "term/termfilter.h"

#include <string.h>

#define ESC 0x1b
#define BEL 0x07
#define CAN 0x18
#define SUB 0x1a
#define DEL 0x7f

/* What the UTF-8 reader hands the parser besides an ASCII byte. */
#define U_CHAR 0x100 /* a complete character from U+00A0 on */
#define U_BAD  0x101 /* a broken sequence */

enum state { ST_GROUND, ST_ESC, ST_CSI, ST_STR, ST_STR_ESC };
enum str_kind { STR_OSC, STR_OTHER }; /* OTHER: DCS, SOS, PM, APC */

struct out {
	uint8_t *p;
	size_t len, cap;
	bool full; /* something did not fit: nothing more is written */
};

/* Writes a whole unit (a character, a sequence) or, when it does not
 * fit, nothing from here on. */
static void emit(struct out *o, const void *p, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void emit2(struct out *o, uint8_t a, uint8_t b)
{
	const uint8_t two[2] = {a, b};
	emit(o, two, 2);
}

void termfilter_init(struct termfilter *f, enum termfilter_mode mode)
{
	memset(f, 0, offsetof(struct termfilter, seq));
	f->mode = (uint8_t)mode;
	f->state = ST_GROUND;
}

/* --- what may pass ------------------------------------------------------ */

/*
 * The parameters of a CSI as ';'-separated numbers (an empty one is 0):
 * false when one is not a number below 100000 or there are more than max.
 */
static bool numbers(const uint8_t *p, size_t n, unsigned *v, size_t max,
		    size_t *count)
{
	size_t k = 0, digits = 0;
	unsigned cur = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == ';') {
			if (k == max)
				return false;
			v[k++] = cur;
			cur = 0;
			digits = 0;
			continue;
		}
		if (p[i] < '0' || p[i] > '9' || ++digits > 5)
			return false;
		cur = cur * 10 + (unsigned)(p[i] - '0');
	}
	*count = k;
	return true;
}

static bool listed(unsigned v, const unsigned *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

/* Every parameter is a number in set. */
static bool all_in(const uint8_t *p, size_t n, const unsigned *set,
		   size_t count)
{
	unsigned v[16];
	size_t k;
	if (!numbers(p, n, v, sizeof(v) / sizeof(v[0]), &k))
		return false;
	for (size_t i = 0; i < k; i++)
		if (!listed(v[i], set, count))
			return false;
	return true;
}

/* No parameter, or 0. */
static bool no_param(const uint8_t *p, size_t n)
{
	return n == 0 || (n == 1 && p[0] == '0');
}

#define ALL_IN(p, n, set) all_in(p, n, set, sizeof(set) / sizeof(set[0]))

/* ANSI modes: insert (IRM), newline (LNM).  Not the keyboard lock. */
static const unsigned ansi_modes[] = {4, 20};

/* DSR: the terminal's status, the cursor position. */
static const unsigned dsr_reports[] = {5, 6};

/* DEC private modes that change only how the window draws or what the
 * keyboard and mouse send: cursor keys, smooth scroll, reverse video,
 * origin, autowrap, autorepeat, X10 mouse, blinking and visible cursor,
 * reverse wrap, keypad, backspace, margins, mouse tracking and its
 * encodings, focus events, alternate scroll, scroll on output or key,
 * meta keys, the alternate screen, bracketed paste, synchronized output,
 * grapheme clusters.  Not: column mode (resizes the window), bell urgency
 * and raise (act on the desktop), the clipboard's selection modes, in-band
 * resize reports (pixel sizes), colour scheme reports. */
static const unsigned dec_modes[] = {
    1,	  4,	5,    6,    7,	  8,	9,    12,   25,	  45,	47,
    66,	  67,	69,   1000, 1002, 1003, 1004, 1005, 1006, 1007, 1010,
    1011, 1015, 1016, 1034, 1036, 1047, 1048, 1049, 2004, 2026, 2027};

/* CSI finals, no marker, no intermediate, any numbers: cursor movement,
 * erasing, inserting, scrolling, tabs, SGR, margins, save/restore. */
static const char csi_draw[] = "@ABCDEFGHIJKLMPSTXZ`abdefgmrs";

/*
 * May a CSI with these parameter and intermediate bytes and this final
 * pass?  Reports pass only when their answer is the window's own state
 * (cursor position, modes, the keyboard protocol) or what the guest is
 * told anyway (its size in characters, the terminal's name and version:
 * TERM_PROGRAM_VERSION): not the window's place or pixel size on the
 * desktop, its title, colours or screen contents.  Over 80 lines: one
 * decision per family of sequences, read top to bottom as the allowlist it
 * is; split, the rule would be harder to review.
 */
static bool csi_allowed(const uint8_t *p, size_t n, uint8_t final)
{
	uint8_t mark = 0;
	size_t i = 0;
	if (n && p[0] >= '<' && p[0] <= '?')
		mark = p[i++];
	size_t ps = i;
	while (i < n && p[i] >= '0' && p[i] <= ';')
		i++;
	const uint8_t *par = p + ps;
	size_t np = i - ps;
	if (n - i > 1)
		return false; /* more than one intermediate */
	uint8_t inter = i < n ? p[i] : 0;
	if (inter && (inter < 0x20 || inter > 0x2f))
		return false; /* a parameter byte after an intermediate */

	unsigned v[2];
	size_t k;
	if (inter == '$' && final == 'p') /* DECRQM: is a mode set? */
		return (mark == 0 || mark == '?') && numbers(par, np, v, 1, &k);
	if (inter == ' ' && final == 'q') /* DECSCUSR: cursor shape */
		return mark == 0;
	if (inter == '!' && final == 'p') /* DECSTR: soft reset */
		return mark == 0 && np == 0;
	if (inter)
		return false;

	switch (mark) {
	case 0:
		if (strchr(csi_draw, final))
			return true;
		switch (final) {
		case 'u': /* restore the cursor */
			return np == 0;
		case 'h':
		case 'l':
			return ALL_IN(par, np, ansi_modes);
		case 'n': /* DSR: status, cursor position */
			return ALL_IN(par, np, dsr_reports);
		case 'c': /* DA1: what the terminal can do */
			return no_param(par, np);
		case 't': /* window ops: only the title stack and the size in
			     characters the guest is told anyway */
			if (!numbers(par, np, v, 2, &k))
				return false;
			return ((v[0] == 22 || v[0] == 23) && k <= 2) ||
			       (v[0] == 18 && k == 1);
		default:
			return false;
		}
	case '?':
		switch (final) {
		case 'h': /* DECSET, DECRST, XTSAVE, XTRESTORE */
		case 'l':
		case 's':
		case 'r':
			return ALL_IN(par, np, dec_modes);
		case 'J': /* selective erase */
		case 'K':
			return true;
		case 'n': /* the cursor position */
			return np == 1 && par[0] == '6';
		case 'u': /* the kitty keyboard protocol's flags */
			return np == 0;
		case 'm': /* XTQMODKEYS */
			return numbers(par, np, v, 1, &k);
		default:
			return false;
		}
	case '>':
		switch (final) {
		case 'c': /* DA2: the terminal's type and version */
		case 'q': /* XTVERSION: its name and version */
			return no_param(par, np);
		case 'u': /* push keyboard protocol flags */
		case 'm': /* XTMODKEYS */
		case 'n':
			return numbers(par, np, v, 2, &k);
		default:
			return false;
		}
	case '<': /* pop, or set, keyboard protocol flags */
	case '=':
		return final == 'u' && numbers(par, np, v, 2, &k);
	default:
		return false;
	}
}

/* ESC sequences: save/restore the cursor, keypad modes, index, next
 * line, tab set, reverse index, reset; character set designations; line
 * size and the alignment test.  Not: DECID (an answer), the 8-bit and
 * character set switches (S8C1T, ESC %: they would change how the
 * terminal reads what follows), single shifts. */
static bool esc_allowed(const uint8_t *p, size_t n, uint8_t final)
{
	if (n == 0)
		return strchr("78=>DEHMc", final) != NULL;
	if (n == 1 && strchr("()*+-./", p[0]))
		return true;
	return n == 1 && p[0] == '#' && strchr("34568", final);
}

static bool has(const uint8_t *p, size_t n, uint8_t c)
{
	return n && memchr(p, c, n) != NULL;
}

/*
 * OSC strings that pass: titles (0, 1, 2), hyperlinks (8), progress
 * (9;4), setting and resetting colours (4, 5, 10-19, 104, 105, 110-119)
 * but never querying them ('?').  Not: the clipboard (52), fonts (50),
 * the working directory (7), notifications (9, 99, 777), iTerm2's 1337
 * (files, user variables), kitty's file transfer (5113) and the rest.
 */
static bool osc_allowed(const uint8_t *p, size_t n)
{
	size_t i = 0;
	unsigned ps = 0;
	while (i < n && i < 6 && p[i] >= '0' && p[i] <= '9')
		ps = ps * 10 + (unsigned)(p[i++] - '0');
	if (i == 0 || i > 5 || (i < n && p[i] != ';'))
		return false;
	bool arg = i < n;
	const uint8_t *a = p + i + (arg ? 1 : 0);
	size_t an = arg ? n - i - 1 : 0;
	if (ps == 0 || ps == 1 || ps == 2 || ps == 8)
		return arg;
	if (ps == 4 || ps == 5 || (ps >= 10 && ps <= 19))
		return arg && !has(a, an, '?');
	if (ps == 104 || ps == 105 || (ps >= 110 && ps <= 119))
		return !has(a, an, '?');
	if (ps == 9) { /* ConEmu's progress: 9;4;state;percent */
		if (an < 1 || a[0] != '4' || (an > 1 && a[1] != ';'))
			return false;
		for (size_t j = 1; j < an; j++)
			if (a[j] != ';' && (a[j] < '0' || a[j] > '9'))
				return false;
		return true;
	}
	return false;
}

/* --- the parser ---------------------------------------------------------- */

/* A C0 control outside a string. */
static void control(const struct termfilter *f, struct out *o, int c)
{
	if (f->mode == TERMFILTER_TEXT) {
		if (c >= '\t' && c <= '\r')
			emit(o, " ", 1);
		return;
	}
	/* BEL, BS, HT, LF, VT, FF, CR, SO, SI: not NUL, ENQ (answerback)
	 * and the rest. */
	if (c >= BEL && c <= 0x0f) {
		const uint8_t b = (uint8_t)c;
		emit(o, &b, 1);
	}
}

static void start(struct termfilter *f, enum state st)
{
	f->state = (uint8_t)st;
	f->len = 0;
	f->bad = false;
}

static void ground(struct termfilter *f, struct out *o, int c,
		   const uint8_t *mb, size_t n)
{
	static const uint8_t replacement[] = {0xef, 0xbf, 0xbd};
	if (c == U_CHAR)
		emit(o, mb, n);
	else if (c == U_BAD)
		emit(o, replacement, sizeof(replacement));
	else if (c == ESC)
		start(f, ST_ESC);
	else if (c < 0x20)
		control(f, o, c);
	else if (c != DEL) {
		const uint8_t b = (uint8_t)c;
		emit(o, &b, 1);
	}
}

/* Bytes every sequence outside a string reads alike; true when handled. */
static bool in_sequence(struct termfilter *f, struct out *o, int c,
			const uint8_t *mb, size_t n)
{
	if (c == U_CHAR || c == U_BAD) { /* not part of any sequence */
		f->state = ST_GROUND;
		ground(f, o, c, mb, n);
	} else if (c == ESC) {
		start(f, ST_ESC);
	} else if (c == CAN || c == SUB) {
		f->state = ST_GROUND;
	} else if (c < 0x20) {
		control(f, o, c); /* executed in the middle, as terminals do */
	} else if (c != DEL) {
		return false;
	}
	return true;
}

static void keep(struct termfilter *f, int c)
{
	if (f->len < sizeof(f->seq))
		f->seq[f->len++] = (uint8_t)c;
	else
		f->bad = true;
}

static void esc(struct termfilter *f, struct out *o, int c, const uint8_t *mb,
		size_t n)
{
	if (in_sequence(f, o, c, mb, n))
		return;
	if (c < 0x30) { /* an intermediate */
		if (f->len < 2)
			keep(f, c);
		else
			f->bad = true;
		return;
	}
	if (f->len == 0) {
		switch (c) {
		case '[':
			start(f, ST_CSI);
			return;
		case ']':
			start(f, ST_STR);
			f->str = STR_OSC;
			return;
		case 'P': /* DCS */
		case 'X': /* SOS */
		case '^': /* PM */
		case '_': /* APC */
			start(f, ST_STR);
			f->str = STR_OTHER;
			return;
		default:
			break;
		}
	}
	if (!f->bad && f->mode == TERMFILTER_TERMINAL &&
	    esc_allowed(f->seq, f->len, (uint8_t)c)) {
		emit(o, "\033", 1);
		if (f->len)
			emit(o, f->seq, f->len);
		const uint8_t b = (uint8_t)c;
		emit(o, &b, 1);
	}
	f->state = ST_GROUND;
}

static void csi(struct termfilter *f, struct out *o, int c, const uint8_t *mb,
		size_t n)
{
	if (in_sequence(f, o, c, mb, n))
		return;
	if (c < 0x40) { /* a parameter or an intermediate */
		if (f->len < TERMFILTER_CSI_MAX)
			keep(f, c);
		else
			f->bad = true;
		return;
	}
	if (!f->bad && f->mode == TERMFILTER_TERMINAL &&
	    csi_allowed(f->seq, f->len, (uint8_t)c)) {
		emit2(o, ESC, '[');
		if (f->len)
			emit(o, f->seq, f->len);
		const uint8_t b = (uint8_t)c;
		emit(o, &b, 1);
	}
	f->state = ST_GROUND;
}

/* The string ended with BEL or ST. */
static void str_end(struct termfilter *f, struct out *o, bool bel)
{
	if (f->str == STR_OSC && !f->bad && f->mode == TERMFILTER_TERMINAL &&
	    osc_allowed(f->seq, f->len)) {
		emit2(o, ESC, ']');
		emit(o, f->seq, f->len);
		if (bel)
			emit(o, "\a", 1);
		else
			emit2(o, ESC, '\\');
	}
	f->state = ST_GROUND;
}

static void str(struct termfilter *f, struct out *o, int c, const uint8_t *mb,
		size_t n)
{
	bool buffer =
	    f->str == STR_OSC && f->mode == TERMFILTER_TERMINAL && !f->bad;
	if (c == ESC) {
		f->state = ST_STR_ESC;
	} else if (c == BEL) {
		if (f->str == STR_OSC)
			str_end(f, o, true);
	} else if (c == CAN || c == SUB) {
		f->state = ST_GROUND; /* cancelled */
	} else if (c == U_BAD) {
		f->bad = true;
	} else if (c == U_CHAR) {
		if (buffer && f->len + n <= sizeof(f->seq)) {
			memcpy(f->seq + f->len, mb, n);
			f->len = (uint16_t)(f->len + n);
		} else {
			f->bad = true;
		}
	} else if (c >= 0x20 && c != DEL && buffer) {
		keep(f, c);
	}
	/* Other controls in a string: ignored, as terminals do. */
}

static void unit(struct termfilter *f, struct out *o, int c, const uint8_t *mb,
		 size_t n)
{
	switch (f->state) {
	case ST_ESC:
		esc(f, o, c, mb, n);
		return;
	case ST_CSI:
		csi(f, o, c, mb, n);
		return;
	case ST_STR:
		str(f, o, c, mb, n);
		return;
	case ST_STR_ESC:
		if (c == '\\') {
			str_end(f, o, false);
			return;
		}
		/* Any other ESC ends the string, dropped, and starts a new
		 * sequence. */
		start(f, ST_ESC);
		esc(f, o, c, mb, n);
		return;
	default:
		ground(f, o, c, mb, n);
		return;
	}
}

/* --- UTF-8 --------------------------------------------------------------- */

static void utf8_start(struct termfilter *f, struct out *o, uint8_t b)
{
	uint8_t need = 0, lo = 0x80, hi = 0xbf;
	if (b < 0x80) {
		unit(f, o, b, NULL, 0);
		return;
	}
	if (b >= 0xc2 && b <= 0xdf) {
		need = 1;
	} else if (b >= 0xe0 && b <= 0xef) {
		need = 2;
		if (b == 0xe0)
			lo = 0xa0; /* not overlong */
		if (b == 0xed)
			hi = 0x9f; /* not a surrogate */
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 3;
		if (b == 0xf0)
			lo = 0x90;
		if (b == 0xf4)
			hi = 0x8f; /* not above U+10FFFF */
	}
	if (!need) { /* a stray continuation or C1 byte, C0-C1, F5-FF */
		unit(f, o, U_BAD, NULL, 0);
		return;
	}
	f->u8[0] = b;
	f->u8_len = 1;
	f->u8_need = need;
	f->u8_lo = lo;
	f->u8_hi = hi;
}

static void byte(struct termfilter *f, struct out *o, uint8_t b)
{
	if (!f->u8_need) {
		utf8_start(f, o, b);
		return;
	}
	if (b < f->u8_lo || b > f->u8_hi) {
		/* Broken: one U+FFFD for what was read, b starts afresh. */
		f->u8_need = 0;
		unit(f, o, U_BAD, NULL, 0);
		utf8_start(f, o, b);
		return;
	}
	f->u8[f->u8_len++] = b;
	f->u8_lo = 0x80;
	f->u8_hi = 0xbf;
	if (--f->u8_need)
		return;
	if (f->u8_len == 2 && f->u8[0] == 0xc2 && b < 0xa0) {
		/* U+0080-U+009F, a C1 control: read as ESC and its 7-bit
		 * final, as terminals do. */
		unit(f, o, ESC, NULL, 0);
		unit(f, o, b - 0x40, NULL, 0);
		return;
	}
	unit(f, o, U_CHAR, f->u8, f->u8_len);
}

static size_t run(struct termfilter *f, const uint8_t *in, size_t n,
		  struct out *o)
{
	for (size_t i = 0; i < n && !o->full; i++) {
		/* Plain text passes in runs. */
		if (f->state == ST_GROUND && !f->u8_need && in[i] >= 0x20 &&
		    in[i] < DEL) {
			size_t j = i + 1;
			while (j < n && in[j] >= 0x20 && in[j] < DEL)
				j++;
			/* Each byte a character: as much as fits. */
			size_t k = j - i, room = o->cap - o->len;
			emit(o, in + i, k < room ? k : room);
			o->full = k > room;
			i = j - 1;
			continue;
		}
		byte(f, o, in[i]);
	}
	return o->len;
}

size_t termfilter_run(struct termfilter *f, const void *in, size_t n,
		      uint8_t *out)
{
	struct out o = {.p = out, .cap = TERMFILTER_OUT_MAX(n)};
	return run(f, in, n, &o);
}

size_t termfilter_text(const void *in, size_t n, char *out, size_t cap)
{
	struct termfilter f;
	termfilter_init(&f, TERMFILTER_TEXT);
	struct out o = {.p = (uint8_t *)out, .cap = cap - 1};
	run(&f, in, n, &o);
	out[o.len] = '\0';
	return o.len;
}

/* Unit tests for the guest output's filter (src/host/term/termfilter.c): what a
 * full-screen program draws with passes unchanged, every sequence that acts
 * outside the window or makes the terminal answer with host data is gone,
 * whole, however the stream is cut into reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term/termfilter.h"

struct tcase {
	const char *name;
	const char *in;
	const char *out;
};

/* What the agent's UI and ordinary programs draw with: unchanged. */
static const struct tcase pass[] = {
    {"text", "plain text, 42", NULL},
    {"C0 that draw", "a\tb\r\n\bc\a\v\f", NULL},
    {"shift out, in", "\016qqq\017", NULL},
    {"UTF-8", "h\xc3\xa9llo \xe2\x9c\xb3 \xf0\x9f\x98\x80 \xc2\xa0", NULL},
    {"SGR", "\033[31mred\033[0m\033[1;4;38;5;208m", NULL},
    {"SGR truecolor", "\033[38;2;255;0;0;48;2;0;0;255m", NULL},
    {"SGR sub-parameters", "\033[38:2::255:0:0m\033[4:3m", NULL},
    {"cursor and erase",
     "\033[2J\033[H\033[10;20H\033[K\033[1A\033[2K\033[G\033[3C\033[5d",
     NULL},
    {"insert, delete, scroll", "\033[2@\033[3P\033[4L\033[M\033[2S\033[T",
     NULL},
    {"margins, save, restore", "\033[1;20r\033[s\033[u\0337\0338", NULL},
    {"alternate screen", "\033[?1049h\033[?1049l\033[?47h\033[?1047l",
     NULL},
    {"cursor visibility and shape", "\033[?25l\033[?25h\033[2 q\033[?12h",
     NULL},
    {"bracketed paste", "\033[?2004h\033[?2004l", NULL},
    {"synchronized output", "\033[?2026h\033[?2026l\033[?2026$p", NULL},
    {"mouse modes", "\033[?1000;1002;1003;1006h\033[?1015l\033[?1004h",
     NULL},
    {"keypad, cursor keys", "\033=\033>\033[?1h\033[?1l", NULL},
    {"kitty keyboard protocol", "\033[>1u\033[?u\033[<u\033[=5;1u", NULL},
    {"modifyOtherKeys", "\033[>4;2m\033[>4m\033[?4m", NULL},
    {"reports of the window's own state",
     "\033[6n\033[?6n\033[5n\033[c\033[0c\033[>c\033[>q\033[18t", NULL},
    {"title stack", "\033[22;0t\033[23;0t\033[22t", NULL},
    {"soft reset, reset", "\033[!p\033c", NULL},
    {"ANSI modes", "\033[4h\033[4l\033[20h", NULL},
    {"mode save, restore", "\033[?1049s\033[?1049r", NULL},
    {"charsets, line drawing", "\033(0lqk\033(B\033)0\033#8\033#6", NULL},
    {"index, next line, reverse index, tab set", "\033D\033E\033M\033H",
     NULL},
    {"title BEL", "\033]0;my title\007", NULL},
    {"title ST", "\033]2;\xe2\x9c\xb3 Claude Code\033\\", NULL},
    {"icon name", "\033]1;icon\007", NULL},
    {"hyperlink",
     "\033]8;;https://example.com/a?b=c\033\\link\033]8;;\033\\", NULL},
    {"hyperlink with id", "\033]8;id=7;file:///tmp/x\007a\033]8;;\007",
     NULL},
    {"progress", "\033]9;4;1;50\007\033]9;4;0\033\\", NULL},
    {"colour set and reset",
     "\033]4;1;rgb:ff/00/00\007\033]11;#000000\033\\\033]104\007"
     "\033]110\007\033]112;\007",
     NULL},
};

/* Sequences that act outside the window or answer with host data: gone,
 * with their payload; the text around them stays. */
static const struct tcase drop[] = {
    {"OSC 52 write BEL", "a\033]52;c;SGVsbG8=\007b", "ab"},
    {"OSC 52 write ST", "a\033]52;c;SGVsbG8=\033\\b", "ab"},
    {"OSC 52 query", "a\033]52;c;?\007b", "ab"},
    {"OSC 52 primary", "\033]52;p;eA==\007", ""},
    {"OSC 50 font query", "\033]50;?\007", ""},
    {"OSC 50 font set", "\033]50;fixed\007", ""},
    {"OSC 11 colour query", "a\033]11;?\033\\b", "ab"},
    {"OSC 10 colour query", "\033]10;?\007", ""},
    {"OSC 4 colour query", "\033]4;1;?\007", ""},
    {"OSC 4 set with a query", "\033]4;1;red;2;?\007", ""},
    {"OSC 12, 17, 19 queries", "\033]12;?\007\033]17;?\007\033]19;?\007",
     ""},
    {"OSC 104 with a query", "\033]104;?\007", ""},
    {"OSC 7 working directory", "\033]7;file://host/home/u\007", ""},
    {"OSC 1337 File", "x\033]1337;File=name=YQ==;inline=0:QUFB\007y", "xy"},
    {"OSC 1337 SetUserVar", "\033]1337;SetUserVar=a=Yg==\007", ""},
    {"OSC 1337 CopyToClipboard", "\033]1337;CopyToClipboard=\007", ""},
    {"OSC 5113 kitty file transfer", "\033]5113;ac=send;id=1\033\\", ""},
    {"OSC 5522 kitty clipboard", "\033]5522;type=write\033\\", ""},
    {"OSC 9 notification", "\033]9;you were hacked\007", ""},
    {"OSC 9;9 ConEmu cwd", "\033]9;9;C:\\\007", ""},
    {"OSC 99 notification", "\033]99;;hi\033\\", ""},
    {"OSC 777 notification", "\033]777;notify;a;b\007", ""},
    {"OSC 133 marks", "\033]133;A\007", ""},
    {"OSC 633 VS Code", "\033]633;P;Cwd=/\007", ""},
    {"OSC 22 pointer", "\033]22;pirate\007", ""},
    {"OSC title without ';'", "\033]2\007", ""},
    {"OSC with no number", "\033];x\007", ""},
    {"OSC number too long", "\033]000000;x\007", ""},
    {"CSI 21t title report", "a\033[21tb", "ab"},
    {"CSI 20t icon report", "\033[20t", ""},
    {"CSI 13, 14, 15, 16, 19, 11 t reports",
     "\033[13t\033[14t\033[14;2t\033[15t\033[16t\033[19t\033[11t", ""},
    {"CSI t moves, resizes, iconifies",
     "\033[1t\033[2t\033[3;0;0t\033[4;9;9t\033[5t\033[6t\033[8;99;99t"
     "\033[9;1t\033[10;1t\033[24t",
     ""},
    {"CSI 18t with more", "\033[18;1t", ""},
    {"DA3 unit id", "\033[=c", ""},
    {"DSR others", "\033[?15n\033[?26n\033[?53n\033[?996n\033[7n", ""},
    {"DECRQCRA screen checksum", "\033[1;1;1;1;1;1*y", ""},
    {"DECRQTSR, DECRQPSR", "\033[1$u\033[1$w", ""},
    {"media copy", "\033[i\033[5i\033[?5i\033[4i", ""},
    {"DECREQTPARM", "\033[x\033[1x", ""},
    {"load LEDs", "\033[1q", ""},
    {"keyboard lock", "\033[2h", ""},
    {"XTGETTCAP", "\033P+q544e\033\\", ""},
    {"DECRQSS", "a\033P$qm\033\\b", "ab"},
    {"DECUDK", "\033P0|17/6c73\033\\", ""},
    {"sixel", "\033Pq#0;2;0;0;0~~\033\\", ""},
    {"tmux passthrough", "a\033Ptmux;\033\033]52;c;SGk=\007\033\\b", "ab"},
    {"APC kitty graphics from a file",
     "a\033_Gf=100,t=f;L2V0Yy9wYXNzd2Q=\033\\b", "ab"},
    {"APC BEL does not end it", "\033_Ga=q\007x\033\\", ""},
    {"PM", "\033^private\033\\", ""},
    {"SOS", "\033Xstring\033\\", ""},
    {"DECSET select to clipboard", "\033[?1041h\033[?1044h", ""},
    {"DECSET column mode, urgency, raise", "\033[?3h\033[?1042h\033[?1043h",
     ""},
    {"DECSET mixed with an allowed mode", "\033[?25;1041h", ""},
    {"DECSET in-band resize, colour scheme", "\033[?2048h\033[?2031h", ""},
    {"XTSMGRAPHICS", "\033[?1;1S", ""},
    {"title modes", "\033[>3t\033[>2T", ""},
    {"DECSCL 8-bit", "\033[62;0\"p", ""},
    {"ENQ answerback", "a\005b", "ab"},
    {"C0 others", "a\001\002\003\004\006\020\021\023\034\177b",
     "ab"},
    {"DECID", "\033Z", ""},
    {"S8C1T, S7C1T", "\033 G\033 F", ""},
    {"charset switch", "\033%@\033%G", ""},
    {"single shifts", "\033Nx\033Oy", "xy"},
    {"stray ST", "\033\\", ""},
    {"screen title string", "\033k", ""},
    {"C1 OSC 52 (UTF-8)", "a\xc2\x9d" "52;c;SGk=\xc2\x9c" "b", "ab"},
    {"C1 CSI 21t (UTF-8)", "a\xc2\x9b" "21tb", "ab"},
    {"C1 DCS (UTF-8)", "\xc2\x90$qm\xc2\x9c", ""},
    {"C1 APC (UTF-8)", "\xc2\x9fGf=100;x\xc2\x9c", ""},
    {"C1 PM, SOS (UTF-8)", "\xc2\x9ex\xc2\x9c\xc2\x98y\xc2\x9c", ""},
    {"C1 OSC 52 with BEL (UTF-8)", "\xc2\x9d" "52;c;SGk=\007", ""},
    {"C1 others (UTF-8)", "\xc2\x80\xc2\x81\xc2\x86\xc2\x8e\xc2\x8f", ""},
};

/* C1 controls kept, in 7-bit form; broken sequences; aborts. */
static const struct tcase rewrite[] = {
    {"C1 CSI SGR (UTF-8)", "\xc2\x9b" "31m", "\033[31m"},
    {"C1 OSC title (UTF-8)", "\xc2\x9d" "0;t\xc2\x9c", "\033]0;t\033\\"},
    {"C1 NEL, IND, RI (UTF-8)", "\xc2\x85\xc2\x84\xc2\x8d", "\033E\033D\033M"},
    {"8-bit CSI", "\x9b" "21t", "\xef\xbf\xbd" "21t"},
    {"8-bit OSC", "\x9d" "52;c;SGk=\007", "\xef\xbf\xbd" "52;c;SGk=\007"},
    {"8-bit DCS, APC, ST", "\x90x\x9f\x9c", "\xef\xbf\xbdx\xef\xbf\xbd"
					    "\xef\xbf\xbd"},
    {"title ended by an 8-bit ST is not ended",
     "\033]0;a\x9c\033]52;c;SGk=\007", ""},
    {"title cut by another sequence", "\033]0;ab\033[31m", "\033[31m"},
    {"title ended by C1 ST", "\033]0;ab\xc2\x9cz", "\033]0;ab\033\\z"},
    {"C1 CSI inside a string ends it", "\033]0;a\xc2\x9b" "1m",
     "\033[1m"},
    {"controls in a title", "\033]0;ti\n\ttle\007", "\033]0;title\007"},
    {"CAN cancels a string", "\033]0;ab\030cd", "cd"},
    {"CAN cancels a CSI", "\033[3\030" "1m", "1m"},
    {"SUB cancels an ESC", "\033(\032B", "B"},
    {"ESC restarts", "\033[31\033[32m\033\033[33m", "\033[32m\033[33m"},
    {"a control inside a CSI runs first", "\033[31\nm", "\n\033[31m"},
    {"DEL inside a CSI", "\033[3\1771m", "\033[31m"},
    {"text inside a CSI ends it", "\033[3\xc3\xa9m", "\xc3\xa9m"},
    {"text after ESC ends it", "\033\xc3\xa9", "\xc3\xa9"},
    {"a parameter after an intermediate", "\033[ 1q", ""},
    {"two intermediates", "\033[1 !q", ""},
    {"a marker not first", "\033[1?h", ""},
    {"broken UTF-8", "\xe2\x9c" "a", "\xef\xbf\xbd" "a"},
    {"overlong", "\xc0\xaf\xe0\x80\xaf",
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate", "\xed\xa0\x80",
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"above U+10FFFF", "\xf4\x90\x80\x80x",
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx"},
    {"F5-FF", "\xf5\xff", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"broken UTF-8 in a title", "\033]0;a\xe2\x9c\007", ""},
};

/* Runs in through a fresh filter in pieces: sizes[i] bytes at a time
 * (0: the rest), into an exactly sized buffer for each piece. */
static size_t filter_pieces(const char *in, size_t n, size_t first,
			    size_t each, char *out)
{
	struct termfilter *f = malloc(sizeof(*f));
	assert_non_null(f);
	termfilter_init(f, TERMFILTER_TERMINAL);
	size_t len = 0, off = 0;
	while (off < n) {
		size_t k = off == 0 ? first : each;
		if (k == 0 || k > n - off)
			k = n - off;
		uint8_t *buf = malloc(TERMFILTER_OUT_MAX(k));
		assert_non_null(buf);
		size_t w = termfilter_run(f, in + off, k, buf);
		assert_true(w <= TERMFILTER_OUT_MAX(k));
		memcpy(out + len, buf, w);
		len += w;
		free(buf);
		off += k;
	}
	free(f);
	return len;
}

static void expect(const struct tcase *c, size_t n_in)
{
	const char *want = c->out ? c->out : c->in;
	size_t n_want = c->out ? strlen(c->out) : n_in;
	char *out = malloc(3 * n_in + 64);
	assert_non_null(out);
	/* Whole, byte by byte, and cut in two at every byte. */
	for (size_t cut = 0; cut < n_in; cut++) {
		size_t each = cut == 0 ? 0 : n_in;
		size_t len = filter_pieces(c->in, n_in, cut, each, out);
		if (len != n_want || memcmp(out, want, len) != 0)
			fail_msg("%s, cut at %zu: %zu bytes, want %zu", c->name,
				 cut, len, n_want);
	}
	size_t len = filter_pieces(c->in, n_in, 1, 1, out);
	if (len != n_want || memcmp(out, want, len) != 0)
		fail_msg("%s, byte by byte: %zu bytes, want %zu", c->name, len,
			 n_want);
	/* What passes passes again unchanged. */
	len = filter_pieces(want, n_want, 0, 0, out);
	if (len != n_want || memcmp(out, want, len) != 0)
		fail_msg("%s, filtered twice", c->name);
	free(out);
}

static void run_table(const struct tcase *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect(&t[i], strlen(t[i].in));
}

static void test_pass(void **state)
{
	(void)state;
	run_table(pass, sizeof(pass) / sizeof(pass[0]));
}

static void test_drop(void **state)
{
	(void)state;
	run_table(drop, sizeof(drop) / sizeof(drop[0]));
	/* A NUL in the middle (strlen would stop there). */
	static const struct tcase nul = {"NUL", "a\000b", "ab"};
	expect(&nul, 3);
}

static void test_rewrite(void **state)
{
	(void)state;
	run_table(rewrite, sizeof(rewrite) / sizeof(rewrite[0]));
}

/* A string or CSI too long to hold is dropped whole, and the state is
 * bounded whatever its length. */
static void test_long(void **state)
{
	(void)state;
	size_t n = 3 * TERMFILTER_STR_MAX;
	char *in = malloc(n + 16), *out = malloc(3 * n + 64);
	assert_non_null(in);
	assert_non_null(out);
	static const struct {
		const char *head, *tail;
		size_t body;
		bool kept;
	} c[] = {
	    {"\033]8;;", "\007", TERMFILTER_STR_MAX - 3, true},
	    {"\033]8;;", "\007", TERMFILTER_STR_MAX - 2, false},
	    {"\033]0;", "\033\\", 3 * TERMFILTER_STR_MAX - 8, false},
	    {"\033_G", "\033\\", 3 * TERMFILTER_STR_MAX - 8, false},
	    {"\033[", "m", TERMFILTER_CSI_MAX, true},
	    {"\033[", "m", TERMFILTER_CSI_MAX + 1, false},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		size_t hl = strlen(c[i].head), tl = strlen(c[i].tail);
		memcpy(in, c[i].head, hl);
		memset(in + hl, c[i].head[1] == '[' ? '1' : 'a', c[i].body);
		memcpy(in + hl + c[i].body, c[i].tail, tl);
		memcpy(in + hl + c[i].body + tl, "ok", 2);
		size_t len = hl + c[i].body + tl + 2;
		size_t w = filter_pieces(in, len, 0, 0, out);
		if (c[i].kept)
			assert_memory_equal(out, in, len);
		else
			assert_memory_equal(out, "ok", w);
		assert_int_equal(w, c[i].kept ? len : 2);
		/* In small pieces too. */
		assert_int_equal(filter_pieces(in, len, 7, 13, out), w);
	}
	free(in);
	free(out);
}

/* The bound holds for the worst input: every byte a broken sequence, and
 * a whole kept OSC released by its last byte. */
static void test_bound(void **state)
{
	(void)state;
	static char in[4096];
	memset(in, 0xff, sizeof(in));
	static char out[3 * sizeof(in) + 64];
	assert_int_equal(filter_pieces(in, sizeof(in), 0, 0, out),
			 3 * sizeof(in));
	struct termfilter f;
	termfilter_init(&f, TERMFILTER_TERMINAL);
	static char osc[5 + TERMFILTER_STR_MAX - 3];
	static uint8_t big[TERMFILTER_OUT_MAX(sizeof(osc))];
	memcpy(osc, "\033]8;;", 5);
	memset(osc + 5, 'a', sizeof(osc) - 5);
	assert_int_equal(termfilter_run(&f, osc, sizeof(osc), big), 0);
	uint8_t one[TERMFILTER_OUT_MAX(1)];
	assert_int_equal(termfilter_run(&f, "\007", 1, one),
			 TERMFILTER_STR_MAX + 3);
	/* A UTF-8 lead held, then a broken continuation: two U+FFFD. */
	assert_int_equal(termfilter_run(&f, "\xe2", 1, one), 0);
	assert_int_equal(termfilter_run(&f, "\xff", 1, one), 6);
}

static void test_text(void **state)
{
	(void)state;
	char out[64];
	static const char msg[] = "mount\033]52;c;SGk=\007 failed:\r\n\tno "
				  "\033[31mspace\033[0m\xc2\x9b"
				  "21t\033P$q\033\\\005!";
	assert_int_equal(termfilter_text(msg, strlen(msg), out, sizeof(out)),
			 strlen("mount failed:   no space!"));
	assert_string_equal(out, "mount failed:   no space!");
	/* Cut at a character's end. */
	assert_int_equal(termfilter_text("abc\xc3\xa9z", 6, out, 5), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(termfilter_text("abc\xc3\xa9z", 6, out, 6), 5);
	assert_string_equal(out, "abc\xc3\xa9");
	assert_int_equal(termfilter_text("abcdef", 6, out, 4), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(termfilter_text("abc", 3, out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(termfilter_text("\xff" "a", 2, out, sizeof(out)), 4);
	assert_string_equal(out, "\xef\xbf\xbd" "a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pass),  cmocka_unit_test(test_drop),
	    cmocka_unit_test(test_rewrite), cmocka_unit_test(test_long),
	    cmocka_unit_test(test_bound), cmocka_unit_test(test_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

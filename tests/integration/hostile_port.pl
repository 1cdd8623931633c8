#!/usr/bin/perl
# The hostile guest of 31-relay-bounds.sh and 32-liveness.sh, run as guest
# root (agentSudo).  It writes frames to a ccvm virtio-serial port itself
# and never reads what the host answers:
#
#   hostile_port.pl net SECS MAXBYTES FRAMESIZE FILE
#       kills the guest's network forwarder (ccvm-net), opens ccvm.net and
#       writes FILE (whole frames of FRAMESIZE bytes) over and over, for
#       SECS seconds or MAXBYTES bytes.
#   hostile_port.pl ctl SECS MAXBYTES FRAMESIZE FILE
#       freezes ccvm-init (cgroup v2 freezer: PID 1 takes no signal), takes
#       a copy of its ccvm.ctl fd (pidfd_getfd) and writes FILE the same
#       way; then thaws it, ending on a frame boundary.
#   hostile_port.pl error TEXT
#       freezes ccvm-init and sends ERROR TEXT on its ccvm.ctl fd: a guest
#       that reported a fatal error and then never powers off.
#
# Prints "sent N" (bytes written) when done.
use strict;
use warnings;
use Fcntl;
use POSIX qw(EAGAIN EINTR);

my $CG = '/sys/fs/cgroup';
my $FROZEN = "$CG/ccvm-hostile";

# perl-base has no Time::HiRes.
sub nap { select(undef, undef, undef, $_[0]) }

sub port_dev {
	my ($name) = @_;
	for my $d (glob '/sys/class/virtio-ports/*') {
		open(my $n, '<', "$d/name") or next;
		my $v = <$n> // '';
		chomp $v;
		return '/dev/' . ($d =~ s{.*/}{}r) if $v eq $name;
	}
	die "no $name port\n";
}

sub put {
	my ($path, $text) = @_;
	open(my $f, '>', $path) or die "$path: $!\n";
	syswrite($f, $text) or die "$path: $!\n";
	close($f);
}

sub freeze_init {
	if (!-e "$CG/cgroup.procs") {
		system('mount', '-t', 'cgroup2', 'none', $CG) == 0
		    or die "cannot mount cgroup2\n";
	}
	mkdir $FROZEN;
	put("$FROZEN/cgroup.procs", "1\n");
	put("$FROZEN/cgroup.freeze", "1\n");
	for (1 .. 100) {
		open(my $e, '<', "$FROZEN/cgroup.events") or die;
		return if grep { /^frozen 1$/ } <$e>;
		nap(0.05);
	}
	die "ccvm-init did not freeze\n";
}

sub thaw_init {
	put("$FROZEN/cgroup.freeze", "0\n");
	put("$CG/cgroup.procs", "1\n");
	rmdir $FROZEN;
}

# A copy of ccvm-init's fd on the control port.
sub init_ctl_fh {
	my $dev = port_dev('ccvm.ctl');
	my $fd;
	for my $l (glob '/proc/1/fd/*') {
		my $t = readlink($l) // '';
		($fd) = $l =~ m{(\d+)$} if $t eq $dev;
	}
	defined $fd or die "ccvm-init holds no $dev\n";
	my $pidfd = syscall(434, 1, 0);    # pidfd_open
	die "pidfd_open: $!\n" if $pidfd < 0;
	my $nfd = syscall(438, $pidfd, $fd + 0, 0);    # pidfd_getfd
	die "pidfd_getfd: $!\n" if $nfd < 0;
	open(my $fh, '+<&=', $nfd) or die "fd $nfd: $!\n";
	return $fh;
}

sub frame {
	my ($type, $chan, $payload) = @_;
	return pack('CCvV', $type, 0, $chan, length $payload) . $payload;
}

my $mode = shift @ARGV // '';
$| = 1;
if ($mode eq 'error') {
	my $text = shift @ARGV;
	freeze_init();
	my $fh = init_ctl_fh();
	my $f = frame(16, 0, $text);    # PROTO_ERROR
	my $off = 0;
	while ($off < length $f) {
		my $w = syswrite($fh, $f, length($f) - $off, $off);
		if (!defined $w) {
			die "write: $!\n" unless $! == EAGAIN || $! == EINTR;
			nap(0.05);
			next;
		}
		$off += $w;
	}
	print "sent $off\n";
	sleep 3600;    # ccvm-init stays frozen: nothing powers off
	exit 0;
}

my ($secs, $max, $fsize, $file) = @ARGV;
open(my $ff, '<:raw', $file) or die "$file: $!\n";
my $frames = do { local $/; <$ff> };
close $ff;
my $len = length $frames;
die "$file: not whole frames of $fsize bytes\n" if !$len || $len % $fsize;

my $fh;
if ($mode eq 'net') {
	my $dev = port_dev('ccvm.net');
	system('pkill', '-KILL', '-x', 'ccvm-net');
	# The port is free once its last holder is gone.
	for (1 .. 100) {
		last if sysopen($fh, $dev, O_RDWR | O_NONBLOCK);
		undef $fh;
		nap(0.1);
	}
	$fh or die "cannot open $dev: $!\n";
} elsif ($mode eq 'ctl') {
	freeze_init();
	$fh = init_ctl_fh();
} else {
	die "usage: hostile_port.pl net|ctl SECS MAXBYTES FRAMESIZE FILE\n";
}

my $deadline = time + $secs;
my ($sent, $off, $thawed) = (0, 0, 0);
for (;;) {
	my $boundary = $sent % $fsize == 0;
	last if $boundary && (time >= $deadline || $sent >= $max);
	if (time >= $deadline) {
		# A frame is half written: ccvm-init must read again before
		# the host (whose answers it takes) reads the rest.
		last if $mode eq 'net';
		if ($mode eq 'ctl' && !$thawed) {
			thaw_init();
			$thawed = 1;
		}
	}
	my $w = syswrite($fh, $frames, $len - $off, $off);
	if (!defined $w) {
		die "write: $!\n" unless $! == EAGAIN || $! == EINTR;
		nap(0.02);
		next;
	}
	$sent += $w;
	$off = ($off + $w) % $len;
}
thaw_init() if $mode eq 'ctl' && !$thawed;
print "sent $sent\n";
exit 0;

#!/usr/bin/perl
# Prints every link of README.md and docs/*.md whose file or heading does not exist (nothing when
# all lead somewhere): the README is the door, and a door to nowhere is a defect.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;

sub anchors {
	my ($path) = @_;
	my %a;
	open(my $fh, '<', $path) or return \%a;
	while (my $l = <$fh>) {
		next unless $l =~ /^#+\s*(.*?)\s*$/;
		my $t = lc $1;
		$t =~ s/[^\w\- ]//g;
		$t =~ s/ /-/g;
		$a{$t} = 1;
	}
	return \%a;
}
for my $p ('README.md', glob('docs/*.md')) {
	open(my $fh, '<', $p) or die "$p: $!";
	my $text = do { local $/; <$fh> };
	while ($text =~ /\]\(([^)\s]+)\)/g) {
		my $link = $1;
		next if $link =~ /^(https?|mailto):/;
		my ($f, $a) = split /#/, $link, 2;
		my $target = $f ? File::Spec->canonpath(File::Spec->catfile(dirname($p), $f)) : $p;
		if (!-e $target) { print "$p: $link: no such file\n"; next; }
		print "$p: $link: no such heading\n" if $a && $target =~ /\.md$/ && !anchors($target)->{$a};
	}
}

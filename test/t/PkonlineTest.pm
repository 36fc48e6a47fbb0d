# Helpers the role and security TAP tests share.
#
#   refused($node, $role, $sql, $sqlstate, $what[, $db])  the statement, run as $role, fails with $sqlstate
#   poll($node, $sql[, $secs])                              a boolean query (as superuser) turns true in time
package PkonlineTest;

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(usleep);

sub refused
{
	my ($node, $role, $sql, $sqlstate, $what, $db) = @_;
	my ($ret, $out, $err) =
	  $node->psql($db // 'postgres', $sql, extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	ok($ret != 0 && $err =~ /ERROR:\s+$sqlstate:/, "$what: refused with $sqlstate")
	  or diag("exit code $ret, stderr: $err");
}

sub poll
{
	my ($node, $sql, $secs) = @_;
	my $deadline = time() + ($secs // 30);
	while (time() < $deadline)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}

1;

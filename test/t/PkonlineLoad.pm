# A pgbench load for the TAP tests that run a job on a busy table: back-to-back rounds of
# round_secs seconds (each with its own summary to check) until the job has ended, and the checks
# every such test makes afterwards.
#
#   my $load = PkonlineLoad->new(node => $node, script => $sql, clients => 4, round_secs => 4);
#   $load->start_round;
#   ... start the job ...
#   ok($load->run_until(sub { job_ended() }, 90), 'the job ended while the load ran');
#   $load->check_rounds(500);
#   PkonlineLoad::check_no_client_lock_waits($node);
#
# And the copy methods' kills in their swap step (kill_in_swap).
package PkonlineLoad;

use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# A started node set up for a load test: pkonline preloaded, room for the clients, and every lock
# wait longer than 100 ms (deadlock_timeout) logged, for check_no_client_lock_waits. $extra: more
# postgresql.conf lines.
sub busy_node
{
	my ($name, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pkonline'
max_worker_processes = 16
max_connections = 30
log_lock_waits = on
deadlock_timeout = '100ms'
log_line_prefix = '%m [%p] %a: '
} . ($extra // ''));
	$node->start;
	return $node;
}

# node, script (the pgbench script's text), clients, round_secs; args: more pgbench arguments.
sub new
{
	my ($class, %a) = @_;
	my $self = bless { %a, rounds => [], cur => undef }, $class;
	$self->{args} //= [];
	$self->{file} = $a{node}->basedir . '/load.sql';
	PostgreSQL::Test::Utils::append_to_file($self->{file}, $a{script});
	my $pgbench = $a{node}->config_data('--bindir') . '/pgbench';
	$self->{pgbench} = -x $pgbench ? $pgbench : 'pgbench';
	return $self;
}

sub start_round
{
	my ($self) = @_;
	my $r = { out => '', err => '' };
	$r->{h} = IPC::Run::start(
		[ $self->{pgbench}, '-n', '-c', $self->{clients}, '-j', $self->{clients}, '-T', $self->{round_secs},
		  @{ $self->{args} }, '-f', $self->{file}, $self->{node}->connstr('postgres') ],
		'>', \$r->{out}, '2>', \$r->{err});
	push @{ $self->{rounds} }, $r;
	$self->{cur} = $r;
	return $r;
}

sub finish_round
{
	my ($self) = @_;
	my $r = $self->{cur} or return;
	$self->{cur} = undef;
	$r->{h}->finish;
	$r->{rc} = $r->{h}->result(0);
	($r->{processed}) = $r->{out} =~ /^number of transactions actually processed: (\d+)/m;
	($r->{failed})    = $r->{out} =~ /^number of failed transactions: (\d+)/m;
	($r->{tps})       = $r->{out} =~ /^tps = ([\d.]+)/m;
	return;
}

# The current round ends with the server (stopped on purpose): it is not held against the load.
sub crashed
{
	my ($self) = @_;
	$self->{cur}{crashed} = 1 if $self->{cur};
	$self->finish_round;
	return;
}

# Rounds until done() says so, at most max_secs from now; true if done() said so.
sub run_until
{
	my ($self, $done, $max_secs) = @_;
	my $start = time;
	while (1)
	{
		$self->start_round unless $self->{cur};
		$self->finish_round;
		return 1 if $done->();
		return 0 if time - $start > $max_secs;
	}
}

# Every round exited 0 without aborted clients, no failed transaction, more than $min in all;
# returns how many.
sub check_rounds
{
	my ($self, $min) = @_;
	my ($processed, $failed, $bad, $n) = (0, 0, 0, 0);
	for my $r (@{ $self->{rounds} })
	{
		next if $r->{crashed};
		$n++;
		note(sprintf('pgbench round %d: rc %s, %s transactions, %s failed, %s tps', $n, $r->{rc},
			$r->{processed} // '?', $r->{failed} // '?', $r->{tps} // '?'));
		$processed += $r->{processed} // 0;
		$failed += $r->{failed} // 1;
		if ($r->{rc} != 0 || "$r->{out}$r->{err}" =~ /aborted/i)
		{
			$bad++;
			diag("pgbench output:\n$r->{out}\nstderr:\n$r->{err}");
		}
	}
	is($bad, 0, "pgbench exited 0 without aborted clients in all $n rounds");
	is($failed, 0, 'pgbench: no failed transaction');
	cmp_ok($processed, '>', $min, "pgbench processed $processed transactions");
	return $processed;
}

# With deadlock_timeout = lock_timeout = 100 ms (and log_lock_waits), the server logs every lock
# wait that lasts longer: none may be a client's. Clients log with their application_name (one
# word, from log_line_prefix's %a); background workers, the job's included, have none there (a
# test may hold the job at a debug wait point).
sub check_no_client_lock_waits
{
	my ($node) = @_;
	# Line by line (the log of a long load holds every statement: tens of MB): client lines carry
	# their application_name (one word), the worker's carry none.
	my (@client_waits, @client_deadlocks);
	open(my $fh, '<', $node->logfile) or die "cannot read the server log: $!";
	while (my $line = <$fh>)
	{
		if (index($line, 'still waiting for') >= 0 && $line =~ /\] [^:\s]+: LOG:/)
		{
			chomp $line;
			push @client_waits, $line;
		}
		# The job's own DDL may be a deadlock's victim by design (it is retried); a client may not.
		elsif (index($line, 'ERROR:  deadlock detected') >= 0 && $line =~ /\] [^:\s]+: ERROR:  deadlock detected/)
		{
			chomp $line;
			push @client_deadlocks, $line;
		}
	}
	close $fh;
	is(scalar(@client_waits), 0, 'no client waited for a lock longer than 100 ms')
	  or diag(join("\n", @client_waits[0 .. ($#client_waits < 9 ? $#client_waits : 9)]));
	is(scalar(@client_deadlocks), 0, 'no client was a deadlock victim')
	  or diag(join("\n", @client_deadlocks));
	return;
}

# A copy method's job killed in its swap step, then resumed by the launcher: with at => 'swap',
# inside the swap's transaction (let go from its wait point, it waits there for its lock behind a
# reader, with a write logged just before); with at => 'swap_committed', after it committed
# ($args{before_crash}->($job, $label) checks what shows then). $args{start}->($table) starts the
# job (wait points on) and returns its id; $args{checksum}->($table) sums its rows;
# $args{check_end}->($table, $job, $sum, $label) checks the end state.
sub kill_in_swap
{
	my (%args) = @_;
	my ($node, $t, $at, $label) = @args{qw(node table at label)};
	my $sql = sub { return $node->safe_psql('postgres', $_[0]); };
	my $sum = $args{checksum}->($t);
	my $point = $node->background_psql('postgres');
	$point->query_safe("SELECT pkonline.hold_wait_point('$at')");
	my $j = $args{start}->($t);
	ok($node->poll_query_until('postgres', "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = "
		  . "'pkonline job $j' AND wait_event = 'advisory') AND (SELECT step = 'swap' FROM pkonline.status WHERE job = $j)"),
		$at eq 'swap' ? "$label: the worker is at the swap" : "$label: the worker waits after the swap committed");
	my $reader;
	if ($at eq 'swap')
	{
		# a reader holds the table; the swap, let go, waits for it inside its transaction
		$reader = $node->background_psql('postgres');
		$reader->query_safe("BEGIN; SELECT count(*) FROM $t");
		$sql->("UPDATE $t SET b = b WHERE id <= 10");    # logged, applied by the resumed job
		$sum = $args{checksum}->($t);
		$point->query_safe(q{SELECT pkonline.release_wait_point('swap')});
		ok($node->poll_query_until('postgres', "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = "
			  . "'pkonline job $j' AND wait_event_type = 'Lock' AND wait_event = 'relation' AND xact_start IS NOT NULL)"),
			"$label: the swap waits for its lock inside its transaction");
	}
	else
	{
		$args{before_crash}->($j, $label);
	}
	$node->stop('immediate');
	eval { $point->quit };
	eval { $reader->quit } if $reader;
	$node->start;
	$args{check_end}->($t, $j, $sum, $label);
	return;
}

1;

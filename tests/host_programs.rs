//! The battery: real programs users run, each run plainly and under the real libmemshim.so at the
//! default rate and at `MEMSHIM_RATE=all`, in a fresh working directory. Under the shim each must
//! behave exactly as without it: the same stdout, stderr, exit status (signals included) and the
//! same files left in its working directory (names and bytes; the captures go elsewhere). Every
//! run has a timeout (a hang fails with gdb backtraces). Only what legitimately varies between
//! two runs (timings, pids, temporary names) is normalised.

use memshim_test_support::prelude::shim;

use std::path::Path;

use shim::*;

/// The default rate and every allocation.
const RATES: [Option<&str>; 2] = [None, Some("all")];

fn bash(script: &str) -> Program {
    Program::new("/bin/bash").arg("-c").arg(script)
}

fn same(s: &str) -> String {
    s.to_string()
}

fn nothing(_: &Path) {}

/// Runs a bash script in a fresh working directory, plain vs shim at both rates; returns the
/// plain run (after the comparison passed). At `all` the script's own process (and whatever
/// it execs) must also leave complete captures when it exits normally: a capture cut short
/// means the shim lost its file to the script.
fn script(name: &str, text: &str) -> HostRuns {
    let dir = scratch(&format!("host-{name}"));
    let runs = compare_in_workdir(&bash(text), &dir, &RATES, &nothing, &same, &[]);
    if runs.plain.code.is_some() {
        top_captures_complete(&runs.caps[1]);
    }
    runs
}

/// Asserts the captures of the test's own child (the program it started, before and after
/// its execs) are complete.
fn top_captures_complete(caps: &[Capture]) {
    let me = std::process::id();
    let top: Vec<&Capture> = caps.iter().filter(|c| c.header.ppid == me).collect();
    assert!(!top.is_empty(), "no capture of the program itself at all");
    for c in top {
        c.assert_complete();
    }
}

/// The descriptor juggling most shell scripts do: redirections of numbered descriptors, dup
/// juggling of stdout, here-docs, process substitution, subshells, a coprocess.
const JUGGLING: &str = r#"
exec 3>log.txt
echo "one" >&3
exec 4<<'EOF'
a here-doc line
EOF
read -r l <&4; echo "read: $l"
exec 4<&-
diff <(seq 1 500) <(seq 1 500 | sort -n) && echo "process substitution: same"
while read -r x; do echo "from <(): $x"; done < <(seq 1 3)
( mkdir -p sub && cd sub && echo inside > f && pwd | sed 's|.*/||' )
coproc CO { while read -r l; do echo "co:$l"; done; }
copid=$CO_PID
echo hello >&"${CO[1]}"
read -r r <&"${CO[0]}"
echo "$r"
eval "exec ${CO[1]}>&-"
wait "$copid"; echo "coproc status $?"
exec 5>&1 1>&3
echo "to log through fd 1"
exec 1>&5 5>&-
out=$( { echo out; echo err >&2; } 2>&1 ); echo "captured: $out"
exec 6>&2 2>err.txt
ls /nonexistent-dir-memshim
exec 2>&6 6>&-
cat <<EOF > here.txt
expanded $((6 * 7))
EOF
{ echo "group to 7"; } 7>seven.txt
exec 3>&-
cat log.txt here.txt seven.txt
echo "status ${PIPESTATUS[*]}"
"#;

#[test]
fn bash_descriptor_juggling() {
    let runs = script("bash-juggling", JUGGLING);
    assert!(runs.plain.stdout.contains("co:hello"), "{:?}", runs.plain);
    assert!(runs.files.contains_key("err.txt"));
}

#[test]
fn bash_descriptor_juggling_after_closing_everything_from_3_up() {
    let text = format!("for fd in $(seq 3 255); do eval \"exec $fd>&-\"; done\n{JUGGLING}");
    let runs = script("bash-closeall", &text);
    assert!(runs.plain.stdout.contains("co:hello"), "{:?}", runs.plain);
}

#[test]
fn pipelines_whose_reader_exits_early() {
    let runs = script(
        "early-reader",
        r#"
seq 1 1000000 | head -1; echo "seq|head ${PIPESTATUS[*]}"
ls -R /usr 2>/dev/null | head -3; echo "ls|head ${PIPESTATUS[*]}"
yes | head -2; echo "yes|head ${PIPESTATUS[*]}"
for i in $(seq 1 40); do yes | head -1 >/dev/null; echo -n "${PIPESTATUS[*]};"; done; echo
yes abcdefgh | head -c 100000 | wc -c; echo "yes|head|wc ${PIPESTATUS[*]}"
head -c 3000000 /dev/zero | tr '\0' x | head -c 5 ; echo " tr|head ${PIPESTATUS[*]}"
set -o pipefail
seq 1 100000 | grep -m1 7 ; echo "pipefail $?"
"#,
    );
    assert!(
        runs.plain.stdout.contains("seq|head 141 0"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn tar_gzip_xz_round_trip_of_a_tree() {
    need_tool("xz", "xz-utils");
    let runs = script(
        "tar",
        r#"
set -e
mkdir -p tree/a/b tree/c
seq 1 100000 > tree/a/b/numbers
for i in $(seq 1 40); do echo "file $i" > tree/c/f$i; done
head -c 200000 /dev/zero | tr '\0' z > tree/a/zeds
ln -s a/b/numbers tree/link
T="--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner"
tar -cf tree.tar $T tree
gzip -n -k -9 tree.tar
xz -k -T1 tree.tar
tar -czf piped.tgz $T tree
mkdir out1 out2 out3
tar -xzf tree.tar.gz -C out1
xz -dc tree.tar.xz | tar -xf - -C out2
gzip -dc piped.tgz | tar -xf - -C out3
diff -r tree out1/tree && diff -r tree out2/tree && diff -r tree out3/tree && echo identical
tar -tvf tree.tar | awk '{print $1, $3, $6}' | head -5
md5sum tree.tar
gzip -l tree.tar.gz | tail -1 | awk '{print $2}'
"#,
    );
    assert!(
        runs.plain.stdout.contains("identical"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn git_init_add_commit_log() {
    need_tool("git", "git");
    let dir = scratch("host-git");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let prog = bash(
        r#"
set -e
git init -q -b main repo
cd repo
seq 1 2000 > numbers.txt
printf 'hello\n' > README
git add .
git commit -q -m "first commit"
seq 1 10 >> numbers.txt
mkdir -p src && echo 'int main(void){return 0;}' > src/main.c
git add -A
git commit -q -m "second commit"
git log --format='%H %an %ad %s' --date=iso
git show --stat --format=%s HEAD
git status --short
git ls-files -s
git rev-list --count HEAD
git diff HEAD~1 --stat
git gc -q --prune=now 2>/dev/null
git count-objects -v | grep -v size
"#,
    )
    .env("HOME", home.to_str().unwrap())
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .env("GIT_CONFIG_GLOBAL", "/dev/null")
    .env("GIT_AUTHOR_NAME", "A U Thor")
    .env("GIT_AUTHOR_EMAIL", "author@example.com")
    .env("GIT_COMMITTER_NAME", "C O Mitter")
    .env("GIT_COMMITTER_EMAIL", "committer@example.com")
    .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00+0000")
    .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00+0000");
    // The index holds stat data (inode numbers, times) of the files: it varies between any two
    // runs; `git ls-files -s` above prints what it says.
    let runs = compare_in_workdir(&prog, &dir, &RATES, &nothing, &same, &["repo/.git/index"]);
    assert!(
        runs.plain.stdout.contains("second commit"),
        "{:?}",
        runs.plain
    );
}

#[test]
fn gcc_compiles_and_links() {
    need_tool("gcc", "gcc");
    let runs = script(
        "gcc",
        r#"
set -e
cat > util.c <<'EOF'
#include <stdlib.h>
int twice(int x) { int *p = malloc(sizeof *p); *p = 2 * x; int r = *p; free(p); return r; }
EOF
cat > main.c <<'EOF'
#include <stdio.h>
int twice(int);
int main(void) { printf("twice 21 is %d\n", twice(21)); return 3; }
EOF
gcc -O2 -c util.c -o util.o
gcc -O2 -c main.c -o main.o
gcc -o prog main.o util.o
gcc -O1 -o prog2 main.c util.c
ar rcs libutil.a util.o
gcc -o prog3 main.o -L. -lutil
./prog || echo "prog status $?"
./prog2 || echo "prog2 status $?"
./prog3 || echo "prog3 status $?"
"#,
    );
    assert!(
        runs.plain.stdout.contains("prog status 3"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn perl_one_liners() {
    need_tool("perl", "perl");
    let runs = script(
        "perl",
        r#"
perl -e 'my %h; $h{$_} = $_ * 2 for 1..200000; print scalar(keys %h), "\n"'
seq 1 1000 > nums
perl -ne 'print if /7/' nums | wc -l
perl -i.bak -pe 's/(\d+)/<$1>/' nums
head -2 nums
perl -MList::Util=sum -le 'print sum(map { length } split //, "x" x 100000)'
perl -e 'open(my $f, ">", "out.txt") or die; print $f join(",", sort { $a <=> $b } map { $_ % 97 } 1..500), "\n"; close $f'
perl -e 'exit 5'; echo "perl status $?"
perl -e 'my $p = fork // die; if (!$p) { kill "TERM", $$; sleep 5 } waitpid($p, 0); print "child signal ", $? & 127, "\n"' 
"#,
    );
    assert!(
        runs.plain.stdout.contains("perl status 5"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn sqlite3_one_liners() {
    need_tool("sqlite3", "sqlite3");
    let runs = script(
        "sqlite",
        r#"
set -e
sqlite3 db.sqlite 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER);'
sqlite3 db.sqlite "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<20000) INSERT INTO t(v, n) SELECT printf('row%d', x), x % 13 FROM c;"
sqlite3 db.sqlite 'SELECT count(*), sum(n) FROM t;'
sqlite3 db.sqlite 'CREATE INDEX tn ON t(n); SELECT n, count(*) FROM t GROUP BY n ORDER BY n LIMIT 3;'
sqlite3 db.sqlite 'SELECT v FROM t WHERE n = 5 ORDER BY id DESC LIMIT 2;'
sqlite3 -csv db.sqlite 'SELECT * FROM t LIMIT 3;' > out.csv
echo 'SELECT 1/0, typeof(1/0);' | sqlite3 db.sqlite
sqlite3 db.sqlite 'SELECT * FROM nosuchtable;' || echo "sqlite status $?"
"#,
    );
    assert!(
        runs.plain.stdout.contains("20000|"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn pip_installs_a_local_wheel() {
    let dir = scratch("host-pip");
    let py = python_resolved();
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let o = std::process::Command::new(&py)
        .arg(host_fixtures().join("make_wheel.py"))
        .arg(&wheels)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let whl = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let prog = Program::new(&py)
        .args_of(&[
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--no-compile",
        ])
        .args_of(&[
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--target",
            "site",
        ])
        .arg(whl)
        .env("HOME", home.to_str().unwrap())
        .env("PIP_NO_INPUT", "1")
        .env("PIP_ROOT_USER_ACTION", "ignore");
    let runs = compare_in_workdir(&prog, &dir, &RATES, &nothing, &same, &[]);
    assert!(
        runs.files.contains_key("site/tinypkg/__init__.py"),
        "{:?}",
        runs.files.keys().collect::<Vec<_>>()
    );
    // And the installed package imports, under the shim too.
    let site = dir.join("work/site");
    let imp = Program::new(&py)
        .arg("-c")
        .arg("import tinypkg; print(tinypkg.hello())")
        .env("PYTHONPATH", site.to_str().unwrap());
    let (plain, _) = compare(&imp, &dir, &RATES);
    assert_eq!(plain.stdout, "hello from tinypkg 4950\n");
}

/// Normalises what varies between two runs of CPython's regression test driver: the clock and
/// load average at the start of its lines, durations, the random seed, its pid-named cwd.
fn mask_regrtest(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        // "0:00:01 load avg: 1.23 ..." -> "..."
        if l.len() > 8 && l.as_bytes()[1] == b':' && l[8..].starts_with(" load avg: ") {
            let rest = &l[8 + " load avg: ".len()..];
            l = rest.split_once(' ').map_or("", |x| x.1).to_string();
        } else if l.len() > 8 && l.as_bytes()[1] == b':' && l.as_bytes()[4] == b':' {
            l = l[8..].to_string();
        }
        if l.starts_with("Total duration:")
            || l.starts_with("Using random seed")
            || l.starts_with("== cwd:")
            || l.starts_with("== CPU count")
            || l.contains("load avg")
        {
            continue;
        }
        if l.starts_with("Ran ") {
            if let Some(i) = l.find(" in ") {
                l.truncate(i);
            }
        }
        // "test_x passed in 31.2 sec", "(1.2 sec)": durations.
        if let Some(i) = l
            .find(" in ")
            .filter(|_| l.ends_with(" sec") || l.ends_with(" ms"))
        {
            l.truncate(i);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Runs `python3 -m test -v MODULE -m PATTERN...` plain and under the shim: the same tests
/// must run with the same results (timings masked); `min_run` of them at least, so a pattern
/// that matches nothing is noticed.
fn cpython_slice(name: &str, module: &str, patterns: &[&str], min_run: usize) {
    let dir = scratch(&format!("host-cpython-{name}"));
    let has = std::process::Command::new(python_resolved())
        .args(["-c", "import test.support, test.regrtest"])
        .status()
        .unwrap();
    assert!(
        has.success(),
        "{} has no regression tests (package `test`): Debian's python3 needs libpython3-testsuite",
        python_resolved().display()
    );
    let mut prog = Program::new(python_resolved())
        .args_of(&["-m", "test", "-v", "--randseed", "1", module])
        .env("TMPDIR", dir.join("work").to_str().unwrap());
    for p in patterns {
        prog = prog.arg("-m").arg(*p);
    }
    // regrtest makes (and removes) its own temporary directory, named after its pid, under TMPDIR.
    let runs = compare_in_workdir(&prog, &dir, &RATES, &nothing, &mask_regrtest, &[]);
    assert!(
        runs.plain.stdout.contains("Result: SUCCESS"),
        "{}",
        runs.plain.stdout
    );
    let ran = runs
        .plain
        .stdout
        .lines()
        .filter(|l| l.ends_with(" ... ok"))
        .count();
    assert!(
        ran >= min_run,
        "only {ran} tests passed:\n{}",
        runs.plain.stdout
    );
}

#[test]
fn cpython_test_subprocess_slice() {
    cpython_slice(
        "subprocess",
        "test_subprocess",
        &[
            "test_pass_fds_redirected",
            "test_pass_fds",
            "test_close_fds",
            "test_close_fd_*",
            "test_stdout_stderr_pipe",
            "test_communicate",
            "test_preexec",
            "test_wait",
        ],
        12,
    );
}

#[test]
fn cpython_test_posix_spawn_close_file() {
    cpython_slice(
        "posix",
        "test_posix",
        &[
            "*.TestPosixSpawn.test_close_file",
            "*.TestPosixSpawnP.test_close_file",
            "*.TestPosixSpawn.test_dup2",
            "*.TestPosixSpawn.test_open_file",
            "test_register_at_fork",
            "test_pipe2",
        ],
        5,
    );
}

#[test]
fn cpython_test_threading_slice() {
    cpython_slice(
        "threading",
        "test_threading",
        &[
            "test_daemon*",
            "test_join*",
            "test_*_exit*",
            "test_fork_at_exit",
        ],
        8,
    );
}

#[test]
fn cpython_test_signal_slice() {
    cpython_slice(
        "signal",
        "test_signal",
        &[
            "test_getsignal",
            "test_valid_signals",
            "test_pthread_sigmask*",
            "test_sigpending*",
            "test_issue9324",
            "test_sigwait",
            "test_out_of_range_signal_number_raises_error",
        ],
        8,
    );
}

#[test]
fn cpython_test_os_slice() {
    cpython_slice(
        "os",
        "test_os",
        &[
            "test_fds",
            "test_closerange",
            "test_dup*",
            "test_get_inheritable*",
            "test_pipe*",
            "test_urandom*",
            "test_fork*",
        ],
        12,
    );
}

fn multiprocessing(method: &str) {
    let dir = scratch(&format!("host-mp-{method}"));
    let prog = Program::new(python_resolved())
        .arg(host_fixtures().join("mp_methods.py").to_str().unwrap())
        .arg(method);
    let runs = compare_in_workdir(&prog, &dir, &RATES, &nothing, &same, &[]);
    assert!(
        runs.plain.stdout.contains("failing exit 7"),
        "{:?}",
        runs.plain
    );
}

#[test]
fn multiprocessing_with_fork() {
    multiprocessing("fork");
}

#[test]
fn multiprocessing_with_spawn() {
    multiprocessing("spawn");
}

#[test]
fn multiprocessing_with_forkserver() {
    multiprocessing("forkserver");
}

#[test]
fn make_builds_in_parallel() {
    need_tool("make", "make");
    let runs = script(
        "make",
        r#"
set -e
for i in 1 2 3 4 5 6; do echo "part $i" > in$i.txt; done
cat > Makefile <<'EOF'
PARTS := $(patsubst in%.txt,out%.txt,$(wildcard in*.txt))
all: result.txt
out%.txt: in%.txt
	@tr a-z A-Z < $< > $@
	@seq 1 2000 | sort -rn | head -1 >> $@
result.txt: $(PARTS)
	@cat $(sort $^) > $@
clean:
	@rm -f out*.txt result.txt
fail:
	@false
EOF
make -s -j2 all
cat result.txt
make -s fail 2>err.txt || echo "make fail status $?"
make -s clean && make -s -j2 all && wc -l < result.txt
"#,
    );
    assert!(
        runs.plain.stdout.contains("make fail status 2"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn find_exec_and_xargs_in_parallel() {
    let runs = script(
        "find-xargs",
        r#"
set -e
mkdir -p t/a t/b/c
for i in $(seq 1 30); do seq 1 $((i * 100)) > t/a/f$i; done
for i in $(seq 1 10); do echo $i > t/b/c/g$i; done
find t -type f -exec md5sum {} + | sort -k2
find t -name 'g*' -exec sh -c 'echo "$1: $(cat "$1")"' sh {} \; | sort
find t -type f -print0 | xargs -0 -P 2 -n 4 wc -l | grep -v total | sort -k2 | head -5
seq 1 300 | xargs -P 2 -n 10 sh -c 'echo $#' sh | sort | uniq -c
find t -type f | xargs -P 2 -I{} sh -c 'gzip -n -c "{}" > "{}.gz"'
find t -name '*.gz' | wc -l
seq 1 5 | xargs -P 2 -n 1 sh -c 'exit $(( $1 == 3 ? 255 : 0 ))' sh || echo "xargs status $?"
"#,
    );
    assert!(
        runs.plain.stdout.contains("xargs status 124"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn python_subprocess_and_threads_service() {
    // What a Python service commonly does at once: threads that allocate, subprocesses with
    // pipes and close_fds/pass_fds, a signal handler, files written by a thread pool.
    let text = r#"
import concurrent.futures, os, signal, subprocess, sys, threading
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
def work(i):
    data = [bytes(4096) * (i % 7 + 1) for _ in range(200)]
    with open(f"out{i}.txt", "w") as f:
        f.write(str(sum(len(d) for d in data)))
    return i
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    print("pool", sum(ex.map(work, range(16))))
r, w = os.pipe()
p = subprocess.run(["sh", "-c", f"echo via-pass-fds >&{w}"], pass_fds=[w], close_fds=True)
os.close(w)
print(os.read(r, 100).decode().strip(), p.returncode)
out = subprocess.check_output("seq 1 50000 | sort -rn | head -2", shell=True, text=True)
print(out.split())
p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(p.communicate(b"hello")[0], p.returncode)
os.kill(os.getpid(), signal.SIGUSR1)
print("signals", got)
p = subprocess.run(["sh", "-c", "kill -TERM $$"])
print("child signal", p.returncode)
"#;
    let dir = scratch("host-py-service");
    let prog = Program::new(python_resolved()).arg("-c").arg(text);
    let runs = compare_in_workdir(&prog, &dir, &RATES, &nothing, &same, &[]);
    assert!(
        runs.plain.stdout.contains("child signal -15"),
        "{:?}",
        runs.plain
    );
}

#[test]
fn descriptor_limit_is_the_programs_own() {
    // A program under a small RLIMIT_NOFILE of its own gets as many descriptors, with the same
    // numbers, as without the shim.
    let dir = scratch("host-fd-limit");
    let bin = build_c_file(&dir, &host_fixtures().join("fd_limit.c"), &[]);
    let runs = compare_in_workdir(&Program::new(&bin), &dir, &RATES, &nothing, &same, &[]);
    assert!(
        runs.plain.stdout.contains("limit 8: opened 5"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn bash_under_a_small_descriptor_limit() {
    script(
        "bash-ulimit-n",
        r#"
ulimit -n 24
for fd in $(seq 3 23); do eval "exec $fd>/dev/null" || echo "exec $fd failed"; done
echo "opened up to 23"
exec 23>&-
seq 1 20000 | sort -rn | head -1
for fd in $(seq 3 22); do eval "exec $fd>&-"; done
echo done
"#,
    );
}

#[test]
fn coreutils_with_temporary_files_and_tees() {
    let runs = script(
        "coreutils-tmp",
        r#"
set -e
mkdir tmp
seq 1 300000 | sed 's/$/ some padding text/' > big.txt
TMPDIR=$PWD/tmp sort -S 64K --parallel=2 -k1,1nr big.txt | head -3
ls tmp | wc -l
split -l 100000 -d big.txt part.
ls part.* | wc -l
seq 1 10000 | tee tee-copy.txt | md5sum > tee-md5.txt
wc -l < tee-copy.txt
dd if=big.txt of=copy.bin bs=64k status=none
cmp big.txt copy.bin && echo "dd copy identical"
flock lockfile -c 'echo "under flock"'
setsid sh -c 'seq 1 5 > setsid.txt'
nohup sh -c 'echo from-nohup' > nohup.txt 2>/dev/null &
wait
cat setsid.txt nohup.txt | tr '\n' ' '; echo
comm -12 <(seq 1 2 100 | sort) <(seq 1 3 100 | sort) | wc -l
"#,
    );
    assert!(
        runs.plain.stdout.contains("dd copy identical"),
        "{}",
        runs.plain.stdout
    );
}

#[test]
fn blocked_signals_wait_for_sigtimedwait_and_signalfd() {
    // A server's way with signals: block them, take them synchronously. A process-directed
    // signal the program blocks everywhere must not go to (and kill through) another thread.
    let dir = scratch("host-sigwait");
    let bin = build_c_file(&dir, &host_fixtures().join("sigwait_blocked.c"), &[]);
    let runs = compare_in_workdir(&Program::new(&bin), &dir, &RATES, &nothing, &same, &[]);
    assert!(
        runs.plain.stdout.contains("signalfd took 20"),
        "{:?}",
        runs.plain
    );
}

#[test]
fn address_space_is_the_programs_own() {
    // What JITs, garbage collectors and Wasm runtimes do: fixed-address reservations
    // (MAP_FIXED_NOREPLACE) and huge PROT_NONE reservations until mmap fails.
    let dir = scratch("host-addr-space");
    let bin = build_c_file(&dir, &host_fixtures().join("addr_space.c"), &[]);
    let prog = Program::new(&bin);
    let plain = prog.run_plain(&dir);
    let count = |o: &Outcome| -> i64 {
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix("1 TiB reservations: "))
            .unwrap_or_else(|| panic!("no count: {o:?}"))
            .parse()
            .unwrap()
    };
    let fixed = |o: &Outcome| -> Vec<String> {
        o.stdout
            .lines()
            .filter(|l| l.starts_with("fixed"))
            .map(str::to_string)
            .collect()
    };
    let n = count(&plain);
    assert!(n > 60, "{plain:?}");
    for rate in RATES {
        let (o, _) = prog.run_shim(&dir, rate.unwrap_or("default"), rate);
        assert_eq!((o.code, o.signal), (plain.code, plain.signal), "{o:?}");
        assert_eq!(o.stderr, plain.stderr);
        assert_eq!(
            fixed(&o),
            fixed(&plain),
            "rate {rate:?}: fixed-address reservations"
        );
        let m = count(&o);
        assert!(
            (m - n).abs() <= 2,
            "rate {rate:?}: {m} reservations of 1 TiB under the shim, {n} without"
        );
    }
}

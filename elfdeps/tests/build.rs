//! elfdeps on binaries built here with cc: RPATH through the loading chain,
//! RUNPATH for direct needs only, a dependency cycle, static binaries,
//! scripts, bad input, `--root` trees that must not touch the host.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::Command as Cmd;

fn cc(dir: &Path, args: &[&str]) {
    let st = Command::new("cc")
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "cc {args:?}");
}

fn elfdeps(stdin: &str, args: &[&str]) -> assert_cmd::assert::Assert {
    Cmd::cargo_bin("elfdeps")
        .unwrap()
        .args(args)
        .write_stdin(stdin)
        .assert()
}

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host's libc as ld.so finds it (via ld.so.cache).
const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
const INTERP: &str = "/lib64/ld-linux-x86-64.so.2";

/// What ldd (the real loader) prints, vdso left out, sorted.
fn ldd(path: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(path).output().unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("linux-vdso"))
        .filter_map(|l| {
            let l = l.trim();
            let p = l.split(" => ").nth(1).unwrap_or(l);
            let p = p.split(" (0x").next().unwrap();
            p.starts_with('/').then(|| p.to_string()).or_else(|| {
                (p == "not found").then(|| format!("{} not found", l.split(" => ").next().unwrap()))
            })
        })
        .collect();
    v.sort();
    v
}

/// T/src, T/lib/{liba,libb}.so, liba needing libb.
fn libs(t: &Path, a_flags: &[&str]) -> PathBuf {
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(t.join("lib")).unwrap();
    fs::create_dir_all(t.join("bin")).unwrap();
    fs::write(src.join("b.c"), "int b(void){return 2;}\n").unwrap();
    fs::write(src.join("a.c"), "int b(void); int a(void){return b()+1;}\n").unwrap();
    fs::write(
        src.join("m.c"),
        "int a(void); int main(void){return a()-3;}\n",
    )
    .unwrap();
    cc(
        &src,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "../lib/libb.so",
            "b.c",
            "-Wl,-soname,libb.so",
        ],
    );
    let mut args = vec![
        "-shared",
        "-fPIC",
        "-o",
        "../lib/liba.so",
        "a.c",
        "-Wl,-soname,liba.so",
        "-L../lib",
        "-lb",
    ];
    args.extend_from_slice(a_flags);
    cc(&src, &args);
    src
}

#[test]
fn rpath_origin_and_the_loading_chain() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let src = libs(&t, &[]);
    // DT_RPATH of the program serves liba's needs too (libb).
    cc(
        &src,
        &[
            "-o",
            "../bin/prog",
            "m.c",
            "-L../lib",
            "-la",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
    );
    let prog = t.join("bin/prog");
    let out = elfdeps(&format!("{}\n", prog.display()), &[]).success();
    let got = lines(&out.get_output().stdout);
    let d = t.display();
    let want = vec![
        format!("{d}/bin/../lib/liba.so"),
        format!("{d}/bin/../lib/libb.so"),
        LIBC.to_string(),
        INTERP.to_string(),
    ];
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(got, sorted);
    assert_eq!(got, ldd(&prog));
    assert!(Command::new(&prog).status().unwrap().success());
}

#[test]
fn runpath_serves_only_direct_needs() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let src = libs(&t, &[]);
    cc(
        &src,
        &[
            "-o",
            "../bin/prog",
            "m.c",
            "-L../lib",
            "-la",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
    );
    let prog = t.join("bin/prog");
    let input = format!("{}\n", prog.display());
    let out = elfdeps(&input, &[]).failure().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(&format!(
            "\"libb.so\" (needed by \"{}/bin/../lib/liba.so\")",
            t.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.get_output().stdout.is_empty());
    let out = elfdeps(&input, &["--allow-missing"]).success();
    let got = lines(&out.get_output().stdout);
    assert_eq!(
        got,
        vec![
            LIBC.to_string(),
            INTERP.into(),
            format!("{}/bin/../lib/liba.so", t.display())
        ]
    );
    assert!(String::from_utf8_lossy(&out.get_output().stderr)
        .contains("warning: \"libb.so\": not found"));
    // ldd agrees: libb.so => not found.
    assert!(ldd(&prog).contains(&"libb.so not found".to_string()));

    // liba's own RUNPATH finds it.
    let t2 = tempfile::tempdir().unwrap();
    let t2 = t2.path().canonicalize().unwrap();
    let src = libs(&t2, &["-Wl,--enable-new-dtags,-rpath,$ORIGIN"]);
    cc(
        &src,
        &[
            "-o",
            "../bin/prog",
            "m.c",
            "-L../lib",
            "-la",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
    );
    let prog = t2.join("bin/prog");
    let out = elfdeps(&format!("{}\n", prog.display()), &[]).success();
    let got = lines(&out.get_output().stdout);
    assert_eq!(got, ldd(&prog));
    assert!(got.contains(&format!("{}/bin/../lib/libb.so", t2.display())));
}

#[test]
fn dependency_cycles_terminate() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    fs::write(
        t.join("x.c"),
        "int y(void); int x(void){return 1;} int xy(void){return y();}\n",
    )
    .unwrap();
    fs::write(t.join("y.c"), "int x(void); int y(void){return x();}\n").unwrap();
    fs::write(
        t.join("m.c"),
        "int xy(void); int main(void){return xy()-1;}\n",
    )
    .unwrap();
    fs::write(t.join("x0.c"), "int x(void){return 1;}\n").unwrap();
    cc(
        &t,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libx.so",
            "x0.c",
            "-Wl,-soname,libx.so",
        ],
    );
    cc(
        &t,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "liby.so",
            "y.c",
            "-Wl,-soname,liby.so",
            "-L.",
            "-lx",
            "-Wl,-rpath,$ORIGIN",
        ],
    );
    cc(
        &t,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libx.so",
            "x.c",
            "-Wl,-soname,libx.so",
            "-L.",
            "-ly",
            "-Wl,-rpath,$ORIGIN",
        ],
    );
    cc(
        &t,
        &["-o", "prog", "m.c", "-L.", "-lx", "-Wl,-rpath,$ORIGIN"],
    );
    let prog = t.join("prog");
    let out = elfdeps(&format!("{}\n", prog.display()), &[]).success();
    let got = lines(&out.get_output().stdout);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got, ldd(&prog));
}

#[test]
fn static_binaries_scripts_and_non_elf_need_nothing() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    fs::write(t.join("m.c"), "int main(void){return 0;}\n").unwrap();
    cc(&t, &["-static", "-o", "static", "m.c"]);
    cc(&t, &["-static-pie", "-o", "static-pie", "m.c"]);
    fs::write(t.join("script"), "#!/bin/sh\necho hi\n").unwrap();
    fs::write(t.join("text"), "hello\n").unwrap();
    cc(&t, &["-c", "-o", "m.o", "m.c"]);
    let input = ["static", "static-pie", "script", "text", "m.o", "."]
        .map(|n| format!("{}\n", t.join(n).display()))
        .concat();
    let out = elfdeps(&input, &[]).success();
    assert!(out.get_output().stdout.is_empty());
    assert!(out.get_output().stderr.is_empty());
}

#[test]
fn bad_input_is_one_line_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let missing = t.join("nope");
    let out = elfdeps(&format!("{}\n", missing.display()), &[])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert_eq!(
        err,
        format!(
            "elfdeps: \"{}\": no such file or directory\n",
            missing.display()
        )
    );

    let bin = fs::read("/bin/true").unwrap();
    let cut = t.join("truncated");
    fs::write(&cut, &bin[..200]).unwrap();
    let out = elfdeps(&format!("{}\n", cut.display()), &[])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.starts_with(&format!("elfdeps: \"{}\": ", cut.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    elfdeps("\n", &[]).failure().code(1);
}

/// Every prefix of a real library and many corrupted copies: errors or
/// nothing, never a panic or a hang.
#[test]
fn corrupt_elf_never_panics() {
    let lib = fs::read("/lib/x86_64-linux-gnu/libz.so.1").unwrap();
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    let mut resolver = elfdeps::Resolver::new(None).unwrap();
    let mut cuts: Vec<usize> = (0..4096).step_by(3).collect();
    cuts.extend((4096..lib.len()).step_by(997));
    for (i, cut) in cuts.into_iter().enumerate() {
        let g = t.path().join(format!("cut{i}"));
        fs::write(&g, &lib[..cut]).unwrap();
        let _ = resolver.resolve_input(g.as_os_str().as_encoded_bytes());
    }
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for i in 0..3000 {
        let mut bytes = lib[..lib.len().min(16384)].to_vec();
        for _ in 0..4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pos = (seed >> 33) as usize % 1024;
            bytes[pos] = (seed >> 20) as u8;
        }
        let g = t.path().join(format!("flip{i}"));
        fs::write(&g, &bytes).unwrap();
        let _ = resolver.resolve_input(g.as_os_str().as_encoded_bytes());
    }
    fs::write(&f, b"\x7fELF").unwrap();
    assert!(resolver
        .resolve_input(f.as_os_str().as_encoded_bytes())
        .is_err());
}

#[test]
fn newline_in_a_name_needs_z() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let d = t.join("a\nb");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("b.c"), "int b(void){return 2;}\n").unwrap();
    fs::write(
        d.join("m.c"),
        "int b(void); int main(void){return b()-2;}\n",
    )
    .unwrap();
    cc(
        &d,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libb.so",
            "b.c",
            "-Wl,-soname,libb.so",
        ],
    );
    cc(
        &d,
        &["-o", "prog", "m.c", "-L.", "-lb", "-Wl,-rpath,$ORIGIN"],
    );
    let input = format!("{}\0", d.join("prog").display());
    let out = elfdeps(&input, &["-0"]).failure().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("use -z"), "{err}");
    assert!(out.get_output().stdout.is_empty());
    let out = elfdeps(&input, &["-0", "-z"]).success();
    let got: Vec<&[u8]> = out
        .get_output()
        .stdout
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .collect();
    let lib = format!("{}/libb.so", d.display());
    assert!(got.contains(&lib.as_bytes()), "{got:?}");
}

/// A tree with its own libc (a different file from the host's), a library
/// the host lacks, an ld.so.conf with includes, absolute symlinks, and a
/// library the host has but the tree lacks: the host must not be used.
#[test]
fn root_resolves_inside_the_tree_only() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let r = t.join("root");
    let tri = "usr/lib/x86_64-linux-gnu";
    fs::create_dir_all(r.join(tri)).unwrap();
    fs::create_dir_all(r.join("usr/lib64")).unwrap();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::create_dir_all(r.join("opt/lib")).unwrap();
    fs::create_dir_all(r.join("etc/ld.so.conf.d")).unwrap();
    symlink("usr/lib", r.join("lib")).unwrap();
    symlink("usr/lib64", r.join("lib64")).unwrap();
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        r.join("usr/lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    fs::copy(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        r.join(tri).join("ld-linux-x86-64.so.2"),
    )
    .unwrap();
    fs::copy(LIBC, r.join(tri).join("libc.so.6")).unwrap();
    fs::write(
        r.join("etc/ld.so.conf"),
        "# test\ninclude ld.so.conf.d/*.conf\n",
    )
    .unwrap();
    fs::write(
        r.join("etc/ld.so.conf.d/opt.conf"),
        "/opt/lib/\n/lib/x86_64-linux-gnu\n",
    )
    .unwrap();
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("t.c"), "int t(void){return 0;}\n").unwrap();
    fs::write(
        src.join("m.c"),
        "int t(void); int main(void){return t();}\n",
    )
    .unwrap();
    cc(
        &src,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libtreeonly.so.1",
            "t.c",
            "-Wl,-soname,libtreeonly.so.1",
        ],
    );
    fs::copy(
        src.join("libtreeonly.so.1"),
        r.join("opt/lib/libtreeonly.so.1"),
    )
    .unwrap();
    cc(&src, &["-o", "prog", "m.c", "-L.", "-l:libtreeonly.so.1"]);
    fs::copy(src.join("prog"), r.join("usr/bin/prog")).unwrap();
    // libz exists on the host, not in the tree.
    cc(
        &src,
        &[
            "-o",
            "zprog",
            "m.c",
            "-L.",
            "-l:libtreeonly.so.1",
            "-Wl,--no-as-needed",
            "-lz",
        ],
    );
    fs::copy(src.join("zprog"), r.join("usr/bin/zprog")).unwrap();

    let root = r.to_str().unwrap();
    let out = elfdeps("/usr/bin/prog\n./usr/bin/prog\n", &["--root", root]).success();
    assert_eq!(
        lines(&out.get_output().stdout),
        vec![
            LIBC.to_string(),
            INTERP.into(),
            "/opt/lib/libtreeonly.so.1".into()
        ]
    );
    let out = elfdeps("usr/bin/zprog\n", &["--root", root])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("\"libz.so.1\" (needed by \"/usr/bin/zprog\")"),
        "{err}"
    );

    // Hostile: a symlink climbing out of the tree to the host's libz.
    symlink(
        "../../../../../../../../lib/x86_64-linux-gnu/libz.so.1",
        r.join(tri).join("libz.so.1"),
    )
    .unwrap();
    elfdeps("usr/bin/zprog\n", &["--root", root])
        .failure()
        .code(1);

    // An include loop is an error naming the chain.
    fs::write(
        r.join("etc/ld.so.conf.d/loop.conf"),
        "include /etc/ld.so.conf\n",
    )
    .unwrap();
    let out = elfdeps("usr/bin/prog\n", &["--root", root])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(
            "include loop: \"/etc/ld.so.conf\" -> \"/etc/ld.so.conf.d/loop.conf\" -> \"/etc/ld.so.conf\""
        ),
        "{err}"
    );
}

/// A library of another machine earlier in the search path is skipped (as
/// ld.so skips it); a file that is not ELF where a library is looked for
/// stops the search with an error naming it (ld.so: "invalid ELF header").
#[test]
fn foreign_machines_are_skipped_and_non_elf_candidates_fail() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let src = libs(&t, &[]);
    fs::create_dir_all(t.join("first")).unwrap();
    let mut foreign = fs::read(t.join("lib/libb.so")).unwrap();
    foreign[18] = 183; // e_machine = EM_AARCH64 (little-endian u16 at 18)
    foreign[19] = 0;
    fs::write(t.join("first/libb.so"), &foreign).unwrap();
    fs::write(t.join("first/liba.so"), &foreign).unwrap();
    cc(
        &src,
        &[
            "-o",
            "../bin/prog",
            "m.c",
            "-L../lib",
            "-la",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../first:$ORIGIN/../lib",
        ],
    );
    let prog = t.join("bin/prog");
    let out = elfdeps(&format!("{}\n", prog.display()), &[]).success();
    let got = lines(&out.get_output().stdout);
    assert!(
        got.contains(&format!("{}/bin/../lib/libb.so", t.display())),
        "{got:?}"
    );
    assert_eq!(got, ldd(&prog));

    fs::write(t.join("first/libb.so"), "not a library\n").unwrap();
    let out = elfdeps(&format!("{}\n", prog.display()), &[])
        .failure()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.starts_with(&format!(
            "elfdeps: \"{}/bin/../first/libb.so\": not an ELF file",
            t.display()
        )),
        "{err}"
    );
}

/// On a Debian tree (`$BENCH_TREE`, as the benchmarks take it): the same
/// as ldd run inside it with chroot. Without one, or without root for the
/// chroot, it says so with a visible skip.
#[test]
fn debian_tree_same_as_ldd_in_chroot() {
    let Some(tree) = std::env::var_os("BENCH_TREE") else {
        testkit::skip(
            "no Debian tree in $BENCH_TREE (debootstrap --variant=minbase --include=busybox bookworm DIR)",
        );
        return;
    };
    let tree = tree.to_string_lossy().into_owned();
    if !Path::new(&tree).join("usr/bin/ldd").exists() {
        panic!("BENCH_TREE={tree} holds no usr/bin/ldd: not a Debian tree");
    }
    if !testkit::is_root() {
        testkit::skip("comparing with ldd needs chroot, which needs root");
        return;
    }
    let list = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . -type f -perm -u+x | sed 's,^\\.,,' | sort")
        .arg("sh")
        .arg(&tree)
        .output()
        .unwrap();
    let files = String::from_utf8(list.stdout).unwrap();
    let out = elfdeps(&files, &["--root", &tree]).success();
    let got = lines(&out.get_output().stdout);
    let ldd = Command::new("chroot")
        .arg(&tree)
        .args([
            "sh",
            "-c",
            "while read -r f; do ldd \"$f\" 2>/dev/null; done",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(files.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let mut want: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter(|l| !l.contains("linux-vdso"))
        .filter_map(|l| {
            let l = l.trim();
            let p = l.split(" => ").nth(1).unwrap_or(l);
            let p = p.split(" (0x").next().unwrap();
            p.starts_with('/').then(|| p.to_string())
        })
        .collect();
    want.sort();
    want.dedup();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

/// A reader that goes away early (`elfdeps | head -0`) ends elfdeps quietly.
#[test]
fn closed_stdout_is_quiet() {
    let cmd = Command::new(env!("CARGO_BIN_EXE_elfdeps"));
    testkit::assert_quiet_when_stdout_closed(cmd, b"/bin/ls\n".to_vec(), 0);
}

/// With `--root`, `..` from DT_RUNPATH, `$ORIGIN/..` or PT_INTERP is
/// resolved in the tree before printing: a consumer joining the printed
/// path with DIR (`install -D "DIR/$f"`) must not climb out of DIR. The
/// directory part is resolved chroot-style (an absolute directory symlink
/// means a path in the tree, and `..` after it is taken from its target,
/// not lexically), the file keeps the name it was opened by.
#[test]
fn root_prints_paths_without_dot_components() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let r = t.join("root");
    for d in [
        "bin",
        "lib64",
        "lib/x86_64-linux-gnu",
        "opt/l",
        "srv/deep/real",
    ] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::copy(INTERP, r.join("lib64/ld-linux-x86-64.so.2")).unwrap();
    fs::copy(LIBC, r.join("lib/x86_64-linux-gnu/libc.so.6")).unwrap();
    symlink("/srv/deep/real", r.join("opt/link")).unwrap();
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.c"), "int a(void){return 1;}\n").unwrap();
    fs::write(src.join("b.c"), "int b(void){return 2;}\n").unwrap();
    fs::write(
        src.join("m.c"),
        "int a(void); int b(void); int main(void){return a()+b();}\n",
    )
    .unwrap();
    cc(
        &src,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "liba.so",
            "a.c",
            "-Wl,-soname,liba.so",
        ],
    );
    cc(
        &src,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libb.so",
            "b.c",
            "-Wl,-soname,libb.so",
        ],
    );
    cc(
        &src,
        &[
            "-o",
            "p",
            "m.c",
            "-L.",
            "-la",
            "-lb",
            "-Wl,--dynamic-linker=/lib/../lib64/./ld-linux-x86-64.so.2",
            "-Wl,--enable-new-dtags,-rpath,/../../opt/l:$ORIGIN/../opt/link/../real",
        ],
    );
    fs::copy(src.join("p"), r.join("bin/p")).unwrap();
    fs::copy(src.join("liba.so"), r.join("opt/l/liba.so")).unwrap();
    // libb.so is a symlink: printed under its own name, not its target's.
    fs::copy(src.join("libb.so"), r.join("srv/deep/real/libb.so.1")).unwrap();
    symlink("libb.so.1", r.join("srv/deep/real/libb.so")).unwrap();

    let out = elfdeps("bin/p\n", &["--root", r.to_str().unwrap()]).success();
    let got = lines(&out.get_output().stdout);
    assert_eq!(
        got,
        vec![
            LIBC.to_string(),
            INTERP.into(),
            "/opt/l/liba.so".into(),
            "/srv/deep/real/libb.so".into(),
        ]
    );
    for p in &got {
        assert!(r.join(p.trim_start_matches('/')).starts_with(&r), "{p}");
        assert!(
            !p.split('/').any(|c| c == "." || c == ".."),
            "printed path has a dot component: {p}"
        );
    }
}

//! Real directory servers for the identity tests, started on 127.0.0.1 with
//! random free ports in temporary directories and stopped when dropped: an MIT
//! Kerberos KDC (Debian `krb5-kdc`, `krb5-admin-server`, `krb5-user`) with a
//! throwaway realm, and an OpenLDAP server (Debian `slapd`, `ldap-utils`)
//! configured from a file.
//!
//! Job: `Kdc` (realm, service keytab, users, `kinit`/`kswitch` for clients) and
//! `Slapd` (users, groups, the `memberof` overlay, optional LDAPS, group changes
//! and outages), `tls_for_localhost` for LDAPS, `require` for the programs.
//!
//! Limits: nothing listens beyond loopback; each server lives in its own
//! temporary directory and dies with its value. MIT Kerberos reads its
//! configuration from the process environment (`Kdc::env`), so one KDC per test
//! process. When the Debian packages are missing the tests fail, naming them: CI
//! installs them, and a silent pass would hide a broken feature.
//!
//! Callers: `tests/kerberos.rs`, `tests/kerberos_bench.rs`, `tests/ldap.rs`
//! (and `tests/support_directory/mod.rs`, which re-exports this module).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ca::TestCa;

pub const REALM: &str = "SOCIALGATE.TEST";
pub const BASE: &str = "dc=socialgate,dc=test";
pub const ADMIN_DN: &str = "cn=admin,dc=socialgate,dc=test";
pub const ADMIN_PW: &str = "admin-secret";

/// Finds a program, or fails the test naming the Debian packages that bring it.
pub fn require(program: &str, packages: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{program}` is not installed: this test needs the Debian packages {packages} \
         (apt-get install -y {packages}); .ci/run installs them"
    );
}

pub const KRB5_PACKAGES: &str = "krb5-kdc krb5-admin-server krb5-user libkrb5-dev";
pub const LDAP_PACKAGES: &str = "slapd ldap-utils";

/// A port free on 127.0.0.1 for both TCP and UDP (a KDC listens on both).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port} within 10 s: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the server, if it runs, and reaps it.
fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Runs `cmd` with `input` on its stdin; asserts it succeeds, showing its output
/// under `what` when it does not.
fn run_with_stdin(cmd: &mut Command, input: &str, what: &str) {
    let out = output_with_stdin(cmd, input);
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cmd`'s output, with `input` on its stdin.
fn output_with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// An MIT Kerberos KDC for realm SOCIALGATE.TEST on 127.0.0.1.
pub struct Kdc {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    pub krb5_conf: PathBuf,
    pub kdc_conf: PathBuf,
    /// The service keytab (`HTTP/<service host>`).
    pub keytab: PathBuf,
    /// A credential cache collection (`DIR:`) for the clients.
    pub ccache: String,
    pub rcache_dir: PathBuf,
}

impl Kdc {
    /// Creates the realm with `users` (name, password) and the service principal
    /// `HTTP/<service_host>` with its keytab, then starts the KDC.
    /// `clockskew` (seconds) goes into krb5.conf for every party.
    pub fn start(service_host: &str, users: &[(&str, &str)], clockskew: u32) -> Kdc {
        let krb5kdc = require("krb5kdc", KRB5_PACKAGES);
        let kdb5_util = require("kdb5_util", KRB5_PACKAGES);
        let kadmin = require("kadmin.local", KRB5_PACKAGES);
        require("kinit", KRB5_PACKAGES);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let krb5_conf = d.join("krb5.conf");
        let kdc_conf = d.join("kdc.conf");
        std::fs::write(
            &krb5_conf,
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_realm = false\n dns_lookup_kdc = false\n rdns = false\n dns_canonicalize_hostname = false\n udp_preference_limit = 1\n clockskew = {clockskew}\n\
                 [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n\
                 [domain_realm]\n localhost = {REALM}\n .localhost = {REALM}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            &kdc_conf,
            format!(
                "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n {REALM} = {{\n  database_name = {db}\n  key_stash_file = {stash}\n  acl_file = {acl}\n  max_life = 10h\n  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n }}\n\
                 [logging]\n kdc = FILE:{log}\n",
                db = d.join("principal").display(),
                stash = d.join("stash").display(),
                acl = d.join("kadm5.acl").display(),
                log = d.join("kdc.log").display(),
            ),
        )
        .unwrap();
        std::fs::write(d.join("kadm5.acl"), "").unwrap();
        let env = |c: &mut Command| {
            c.env("KRB5_CONFIG", &krb5_conf)
                .env("KRB5_KDC_PROFILE", &kdc_conf);
        };
        let mut c = Command::new(&kdb5_util);
        c.args(["create", "-s", "-r", REALM, "-P", "throwaway-master-key"]);
        env(&mut c);
        run(&mut c, "kdb5_util create");
        let keytab = d.join("http.keytab");
        let mut queries = vec![
            format!("addprinc -randkey HTTP/{service_host}"),
            format!("ktadd -k {} HTTP/{service_host}", keytab.display()),
        ];
        for (u, p) in users {
            queries.push(format!("addprinc -pw {p} {u}"));
        }
        for q in queries {
            let mut c = Command::new(&kadmin);
            c.args(["-r", REALM, "-q", &q]);
            env(&mut c);
            run(&mut c, &format!("kadmin.local -q '{q}'"));
        }
        let log = d.join("kdc.out");
        let mut c = Command::new(&krb5kdc);
        c.args(["-n", "-r", REALM])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(d.join("kdc.err")).unwrap());
        env(&mut c);
        let mut child = c.spawn().unwrap();
        wait_for_port(port, &mut child, "krb5kdc", &d.join("kdc.log"));
        let ccdir = d.join("ccache");
        std::fs::create_dir_all(&ccdir).unwrap();
        let rcache_dir = d.join("rcache");
        std::fs::create_dir_all(&rcache_dir).unwrap();
        Kdc {
            ccache: format!("DIR:{}", ccdir.display()),
            dir,
            port,
            child: Some(child),
            krb5_conf,
            kdc_conf,
            keytab,
            rcache_dir,
        }
    }

    /// The environment a Kerberos client or acceptor of this realm needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KRB5_CONFIG", self.krb5_conf.display().to_string()),
            ("KRB5CCNAME", self.ccache.clone()),
            ("KRB5_KTNAME", format!("FILE:{}", self.keytab.display())),
            ("KRB5RCACHEDIR", self.rcache_dir.display().to_string()),
            (
                "KRB5_TRACE",
                self.dir.path().join("trace.log").display().to_string(),
            ),
        ]
    }

    /// Sets `env()` in this process, for an in-process gateway and client (all
    /// but `KRB5_TRACE` without `trace`). Call it before any other thread starts:
    /// MIT Kerberos reads the environment without Rust's lock. Then run the async
    /// part on `runtime()`.
    pub fn set_process_env(&self, trace: bool) {
        for (k, v) in self.env() {
            if trace || k != "KRB5_TRACE" {
                std::env::set_var(k, v);
            }
        }
    }

    /// `kinit` a user into the collection (it becomes the primary cache);
    /// `lifetime` like `3s`.
    pub fn kinit(&self, user: &str, password: &str, lifetime: Option<&str>) {
        let mut c = Command::new(require("kinit", KRB5_PACKAGES));
        if let Some(l) = lifetime {
            c.args(["-l", l]);
        }
        c.arg(user).envs(self.env());
        run_with_stdin(&mut c, &format!("{password}\n"), &format!("kinit {user}"));
    }

    /// Makes `user`'s cache the primary one of the collection (what curl uses).
    pub fn kswitch(&self, user: &str) {
        let mut c = Command::new(require("kswitch", KRB5_PACKAGES));
        c.args(["-p", user]).envs(self.env());
        run(&mut c, "kswitch");
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A two-worker tokio runtime, for a test that set the process environment
/// (`Kdc::set_process_env`) before starting it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A user or group for the directory.
pub struct DirUser<'a> {
    pub uid: &'a str,
    pub password: &'a str,
}

/// An OpenLDAP server for dc=socialgate,dc=test on 127.0.0.1, with the
/// `memberof` overlay (so users carry `memberOf`, like Active Directory).
pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Its `slapd.conf`.
    pub conf: PathBuf,
    /// `ldap://127.0.0.1:PORT` (or `ldaps://localhost:PORT` with TLS).
    pub url: String,
    args: Vec<String>,
}

impl Slapd {
    /// Starts slapd and loads `users` (under ou=people) and `groups` (name →
    /// member uids, under ou=groups). With `tls` (certificate chain PEM, key PEM)
    /// it speaks LDAPS only.
    pub fn start(
        users: &[DirUser],
        groups: &[(&str, &[&str])],
        tls: Option<(&str, &str)>,
    ) -> Slapd {
        let slapd = require("slapd", LDAP_PACKAGES);
        require("ldapadd", LDAP_PACKAGES);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let port = free_port();
        let mut tls_conf = String::new();
        if let Some((cert, key)) = tls {
            std::fs::write(d.join("server.crt"), cert).unwrap();
            std::fs::write(d.join("server.key"), key).unwrap();
            tls_conf = format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                d.join("server.crt").display(),
                d.join("server.key").display()
            );
        }
        let conf = d.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 include /etc/ldap/schema/nis.schema\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 moduleload memberof\n\
                 pidfile {pid}\n\
                 {tls_conf}\
                 database mdb\n\
                 maxsize 10485760\n\
                 suffix \"{BASE}\"\n\
                 rootdn \"{ADMIN_DN}\"\n\
                 rootpw {ADMIN_PW}\n\
                 directory {db}\n\
                 overlay memberof\n\
                 access to attrs=userPassword by self write by anonymous auth by * none\n\
                 access to * by * read\n",
                pid = d.join("slapd.pid").display(),
                db = d.join("db").display(),
            ),
        )
        .unwrap();
        let url = if tls.is_some() {
            format!("ldaps://localhost:{port}")
        } else {
            format!("ldap://127.0.0.1:{port}")
        };
        let listen = if tls.is_some() {
            format!("ldaps://127.0.0.1:{port}/")
        } else {
            format!("ldap://127.0.0.1:{port}/")
        };
        let args = vec![
            "-f".to_string(),
            conf.display().to_string(),
            "-h".to_string(),
            listen,
            "-d".to_string(),
            "0".to_string(),
        ];
        let mut s = Slapd {
            dir,
            port,
            child: None,
            conf,
            url,
            args,
        };
        s.spawn(&slapd);
        // Entries go in online, so the memberof overlay fills in memberOf.
        let mut ldif = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: socialgate\no: socialgate test\n\n\
             dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
        );
        for u in users {
            ldif.push_str(&format!(
                "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {pw}\n\n",
                uid = u.uid,
                pw = u.password
            ));
        }
        for (g, members) in groups {
            ldif.push_str(&format!(
                "dn: cn={g},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {g}\n"
            ));
            // groupOfNames needs a member at all times; the admin stands in.
            ldif.push_str(&format!("member: {ADMIN_DN}\n"));
            for m in *members {
                ldif.push_str(&format!("member: uid={m},ou=people,{BASE}\n"));
            }
            ldif.push('\n');
        }
        s.ldap_cmd("ldapadd", &ldif);
        s
    }

    fn spawn(&mut self, slapd: &Path) {
        let d = self.dir.path();
        let log = d.join("slapd.log");
        let mut child = Command::new(slapd)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(d.join("slapd.err")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(self.port, &mut child, "slapd", &d.join("slapd.err"));
        self.child = Some(child);
    }

    /// Runs `ldapadd` or `ldapmodify` as the admin with `ldif` on stdin.
    pub fn ldap_cmd(&self, program: &str, ldif: &str) {
        let mut c = Command::new(require(program, LDAP_PACKAGES));
        c.args([
            "-x",
            "-H",
            &self.url.replace("localhost", "127.0.0.1"),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PW,
        ])
        .env("LDAPTLS_REQCERT", "never");
        // A slapd whose port already answers can still refuse the first bind
        // for a moment ("Can't contact LDAP server": nothing was changed), so
        // that one error is retried a few times; any other fails at once.
        for _ in 0..10 {
            let out = output_with_stdin(&mut c, ldif);
            if !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("Can't contact LDAP server")
            {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            assert!(
                out.status.success(),
                "{program}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        run_with_stdin(&mut c, ldif, program);
    }

    /// Removes `uid` from group `g`.
    pub fn remove_member(&self, g: &str, uid: &str) {
        self.ldap_cmd(
            "ldapmodify",
            &format!(
                "dn: cn={g},ou=groups,{BASE}\nchangetype: modify\ndelete: member\nmember: uid={uid},ou=people,{BASE}\n"
            ),
        );
    }

    /// Adds `uid` to group `g`.
    pub fn add_member(&self, g: &str, uid: &str) {
        self.ldap_cmd(
            "ldapmodify",
            &format!(
                "dn: cn={g},ou=groups,{BASE}\nchangetype: modify\nadd: member\nmember: uid={uid},ou=people,{BASE}\n"
            ),
        );
    }

    /// Stops the server (a directory outage).
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }

    /// Writes the service password file and returns its path.
    pub fn password_file(&self) -> PathBuf {
        let p = self.dir.path().join("bind-password");
        std::fs::write(&p, format!("{ADMIN_PW}\n")).unwrap();
        p
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, made now:
/// (CA PEM, server certificate PEM, server key PEM).
pub fn tls_for_localhost() -> (String, String, String) {
    let ca = TestCa::new("socialgate test directory CA");
    let leaf = ca.leaf(&["localhost".to_string(), "127.0.0.1".to_string()]);
    (ca.pem(), leaf.pem(), leaf.key_pem())
}

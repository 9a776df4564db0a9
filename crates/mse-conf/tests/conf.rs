//! mse.toml in its three generations: the seeds' examples verbatim, and every bad-input case
//! with its exact message.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use mse_conf::{AppConf, LoadOptions, Schema};

/// The `[cloud]` example of the seeds' "Develop your app" page for mse-cli 1.x, verbatim.
const SEED_V1: &str = r#"name = "helloworld"
python_application = "app:app"
healthcheck_endpoint = "/whoami"
tests_cmd = "pytest"
tests_requirements = [ "intel-sgx-ra>=1.0.1,<1.1", "pytest==7.2.0",]

[cloud]
code = "./code"
tests = "./tests"
docker = "ghcr.io/cosmian/mse-pytorch:20230104085621"
project = "default"
hardware = "4g-eu-001"
secrets = "secrets.json"

[cloud.ssl]
domain_name="example.com"
certificate="./cert.secret.pem"
private_key="./key.secret.pem"
"#;

/// The example of the seeds' page for mse-cli 0.9-0.10 (`resource`), verbatim.
const SEED_V0_9: &str = r#"name="helloworld"
project="default"
resource="free"

[code]
location="./code"
python_application="app:app"
healthcheck_endpoint="/whoami"
docker="ghcr.io/cosmian/mse-flask:20230124182826"
secrets="./secrets.json"

[ssl]
domain_name="example.com"
certificate="./cert.secret.pem"
private_key="./key.secret.pem"
"#;

/// mse-cli 0.11-0.12: `hardware` replaced `resource` (the third seed page lost its TOML block
/// in rendering; its text describes this layout).
const V0_11: &str = r#"name="helloworld"
project="default"
hardware="4g-eu-001"
expiration_date="2035-06-29 00:00:00+00:00"

[code]
location="./code"
python_application="app:app"
healthcheck_endpoint="/whoami"
docker="ghcr.io/cosmian/mse-flask:20230124182826"
secrets="./secrets.json"
"#;

const MINIMAL_V1: &str = r#"name = "demo"
python_application = "app:app"
healthcheck_endpoint = "/health"
tests_cmd = "pytest"
tests_requirements = ["pytest"]

[cloud]
code = "mse_src"
tests = "tests"
docker = "mse-flask"
project = "default"
hardware = "4g-eu-001"
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for code in ["code", "mse_src"] {
            std::fs::create_dir_all(root.join(code)).unwrap();
            std::fs::write(root.join(code).join("app.py"), "app = None\n").unwrap();
        }
        std::fs::create_dir_all(root.join("tests")).unwrap();
        std::fs::write(root.join("secrets.json"), r#"{"login": "username"}"#).unwrap();
        let fx = Self { dir };
        fx.cert("cert.secret.pem", "key.secret.pem", &["example.com"], 2036);
        fx
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn cert(&self, cert: &str, key: &str, names: &[&str], until_year: i32) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        let kp = rcgen::KeyPair::generate().unwrap();
        let c = params.self_signed(&kp).unwrap();
        std::fs::write(self.root().join(cert), c.pem()).unwrap();
        std::fs::write(self.root().join(key), kp.serialize_pem()).unwrap();
    }

    fn toml_path(&self) -> PathBuf {
        self.root().join("mse.toml")
    }

    fn load(&self, text: &str) -> Result<AppConf, mse_conf::ConfError> {
        std::fs::write(self.toml_path(), text).unwrap();
        AppConf::load_with(&self.toml_path(), &LoadOptions { now: now() })
    }

    /// The error's full one-line message, with the file path replaced by `mse.toml`.
    fn err(&self, text: &str) -> String {
        let e = self.load(text).expect_err("must be refused");
        let shown = e.to_string();
        let root = format!("{}/", self.root().display());
        shown.replace(&root, "")
    }
}

#[test]
fn seed_v1_parses() {
    let fx = Fixture::new();
    let conf = fx.load(SEED_V1).unwrap();
    assert_eq!(conf.schema, Schema::V1);
    assert_eq!(conf.name, "helloworld");
    assert_eq!(conf.python_application.to_string(), "app:app");
    assert_eq!(conf.healthcheck_endpoint, "/whoami");
    assert_eq!(conf.tests_cmd.as_deref(), Some("pytest"));
    assert_eq!(
        conf.tests_requirements,
        ["intel-sgx-ra>=1.0.1,<1.1", "pytest==7.2.0"]
    );
    let cloud = conf.cloud().unwrap();
    assert_eq!(cloud.code, fx.root().join("./code"));
    assert_eq!(
        cloud.tests.as_deref(),
        Some(fx.root().join("./tests").as_path())
    );
    assert_eq!(cloud.docker, "ghcr.io/cosmian/mse-pytorch:20230104085621");
    assert_eq!(cloud.project.as_deref(), Some("default"));
    assert_eq!(cloud.hardware, "4g-eu-001");
    assert_eq!(
        cloud.secrets.as_deref(),
        Some(fx.root().join("secrets.json").as_path())
    );
    let ssl = cloud.ssl.as_ref().unwrap();
    assert_eq!(ssl.domain_name, "example.com");
    // No expiration_date: the certificate's notAfter is the app's expiration.
    let not_after = Utc.with_ymd_and_hms(2036, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(cloud.expiration_date, Some(not_after));
    assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);
}

#[test]
fn seed_v0_9_parses() {
    let fx = Fixture::new();
    let conf = fx.load(SEED_V0_9).unwrap();
    assert_eq!(conf.schema, Schema::V0_9);
    let cloud = conf.cloud().unwrap();
    assert_eq!(cloud.hardware, "free");
    assert_eq!(cloud.docker, "ghcr.io/cosmian/mse-flask:20230124182826");
    assert_eq!(cloud.ssl.as_ref().unwrap().domain_name, "example.com");
    assert_eq!(conf.tests_cmd, None);
    assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);
}

#[test]
fn v0_11_parses_with_string_expiration() {
    let fx = Fixture::new();
    let conf = fx.load(V0_11).unwrap();
    assert_eq!(conf.schema, Schema::V0_11);
    let cloud = conf.cloud().unwrap();
    assert_eq!(cloud.hardware, "4g-eu-001");
    assert_eq!(
        cloud.expiration_date,
        Some(Utc.with_ymd_and_hms(2035, 6, 29, 0, 0, 0).unwrap())
    );
}

#[test]
fn toml_datetime_expiration() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.replace(
        "hardware = \"4g-eu-001\"",
        "hardware = \"4g-eu-001\"\nexpiration_date = 2030-05-01T12:00:00Z",
    );
    let conf = fx.load(&text).unwrap();
    assert_eq!(
        conf.cloud().unwrap().expiration_date,
        Some(Utc.with_ymd_and_hms(2030, 5, 1, 12, 0, 0).unwrap())
    );
}

#[test]
fn home_style_without_cloud_table() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.split("[cloud]").next().unwrap();
    let conf = fx.load(text).unwrap();
    assert!(conf.cloud.is_none());
    let err = conf.cloud().unwrap_err().to_string();
    assert!(err.ends_with(
        "mse.toml: missing table [cloud] (expected code, tests, docker, project and hardware)"
    ));
}

#[test]
fn syntax_error_has_line_and_column() {
    let fx = Fixture::new();
    assert_eq!(
        fx.err("name = \"x\"\npython_application = \n"),
        "mse.toml:2: invalid TOML at column 22: string values must be quoted, expected literal string"
    );
}

#[test]
fn missing_field() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.replace("healthcheck_endpoint = \"/health\"\n", "");
    assert_eq!(
        fx.err(&text),
        "mse.toml:1: missing field \"healthcheck_endpoint\" (expected a string starting with \"/\" such as \"/health\")"
    );
    let text = MINIMAL_V1.replace("docker = \"mse-flask\"\n", "");
    assert_eq!(
        fx.err(&text),
        "mse.toml:7: missing field \"docker\" in [cloud] (expected a string: an environment name)"
    );
}

#[test]
fn wrong_type() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.replace("name = \"demo\"", "name = 3");
    assert_eq!(
        fx.err(&text),
        "mse.toml:1: name must be a string, got integer 3"
    );
    let text = MINIMAL_V1.replace("[\"pytest\"]", "[\"pytest\", 2]");
    assert_eq!(
        fx.err(&text),
        "mse.toml:5: tests_requirements[1] must be a string, got integer 2"
    );
    let text = MINIMAL_V1.replace("hardware = \"4g-eu-001\"", "hardware = true");
    assert_eq!(
        fx.err(&text),
        "mse.toml:12: cloud.hardware must be a string, got boolean true"
    );
}

#[test]
fn unknown_field_warns() {
    let fx = Fixture::new();
    let text = MINIMAL_V1
        .replace("[cloud]\n", "[cloud]\ncolor = \"blue\"\n")
        .replace("tests_cmd", "workers = 4\ntests_cmd");
    let conf = fx.load(&text).unwrap();
    let shown: Vec<String> = conf
        .warnings
        .iter()
        .map(|w| {
            w.to_string()
                .replace(&format!("{}/", fx.root().display()), "")
        })
        .collect();
    assert_eq!(
        shown,
        [
            "mse.toml:9: warning: unknown field \"cloud.color\" (ignored)",
            "mse.toml:4: warning: unknown field \"workers\" (ignored)",
        ]
    );
}

#[test]
fn bad_python_application() {
    let fx = Fixture::new();
    for bad in ["app", "app:", ":app", "my-app:app", "app:app:x", "1app:app"] {
        let text = MINIMAL_V1.replace("\"app:app\"", &format!("\"{bad}\""));
        assert_eq!(
            fx.err(&text),
            format!("mse.toml:2: python_application must be \"module:variable\", got \"{bad}\"")
        );
    }
    let text = MINIMAL_V1.replace("\"app:app\"", "\"web.main:app\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:2: python_application \"web.main:app\": web/main.py not found in the code directory mse_src"
    );
    // Old schema: the field lives in [code].
    let text = SEED_V0_9.replace("\"app:app\"", "\"app\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:7: code.python_application must be \"module:variable\", got \"app\""
    );
}

#[test]
fn healthcheck_must_start_with_slash() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.replace("\"/health\"", "\"health\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:3: healthcheck_endpoint must start with \"/\", got \"health\""
    );
}

#[test]
fn expiration_in_the_past() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.replace(
        "hardware = \"4g-eu-001\"",
        "hardware = \"4g-eu-001\"\nexpiration_date = \"2025-12-31 23:00:00+00:00\"",
    );
    assert_eq!(
        fx.err(&text),
        "mse.toml:13: cloud.expiration_date must be in the future, got 2025-12-31T23:00:00Z"
    );
    let text = MINIMAL_V1.replace(
        "hardware = \"4g-eu-001\"",
        "hardware = \"4g-eu-001\"\nexpiration_date = \"next week\"",
    );
    assert_eq!(
        fx.err(&text),
        "mse.toml:13: cloud.expiration_date must be a date and time such as 2030-06-29T00:00:00Z, got \"next week\""
    );
}

#[test]
fn certificate_san_must_cover_domain() {
    let fx = Fixture::new();
    let text = SEED_V1.replace("domain_name=\"example.com\"", "domain_name=\"other.org\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:16: cloud.ssl.domain_name \"other.org\" is not covered by the certificate ./cert.secret.pem (its SAN DNS names: example.com)"
    );
    // A wildcard certificate covers one label below it.
    fx.cert(
        "cert.secret.pem",
        "key.secret.pem",
        &["*.example.com"],
        2036,
    );
    let text = SEED_V1.replace(
        "domain_name=\"example.com\"",
        "domain_name=\"app.example.com\"",
    );
    fx.load(&text).unwrap();
    let text = SEED_V1.replace(
        "domain_name=\"example.com\"",
        "domain_name=\"a.b.example.com\"",
    );
    assert!(fx.err(&text).contains("\"a.b.example.com\" is not covered"));
}

#[test]
fn expiration_after_certificate_not_after() {
    let fx = Fixture::new();
    let text = SEED_V1.replace(
        "secrets = \"secrets.json\"",
        "secrets = \"secrets.json\"\nexpiration_date = 2037-01-01T00:00:00Z",
    );
    assert_eq!(
        fx.err(&text),
        "mse.toml:14: cloud.expiration_date 2037-01-01T00:00:00Z is after the certificate's notAfter 2036-01-01T00:00:00Z"
    );
}

#[test]
fn expired_certificate() {
    let fx = Fixture::new();
    fx.cert("cert.secret.pem", "key.secret.pem", &["example.com"], 2025);
    assert_eq!(
        fx.err(SEED_V1),
        "mse.toml:17: cloud.ssl.certificate: the certificate ./cert.secret.pem expired on 2025-01-01T00:00:00Z"
    );
}

#[test]
fn paths_that_do_not_exist() {
    let fx = Fixture::new();
    let text = SEED_V1.replace("secrets = \"secrets.json\"", "secrets = \"nope.json\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:13: cloud.secrets: file not found: nope.json"
    );
    let text = SEED_V1.replace("./cert.secret.pem", "./missing.pem");
    assert_eq!(
        fx.err(&text),
        "mse.toml:17: cloud.ssl.certificate: file not found: ./missing.pem"
    );
    let text = SEED_V1.replace("./key.secret.pem", "./missing.pem");
    assert_eq!(
        fx.err(&text),
        "mse.toml:18: cloud.ssl.private_key: file not found: ./missing.pem"
    );
    let text = SEED_V1.replace("code = \"./code\"", "code = \"./src\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:8: cloud.code: code directory not found: ./src"
    );
}

#[test]
fn secrets_or_key_inside_code_directory_is_refused() {
    let fx = Fixture::new();
    std::fs::copy(
        fx.root().join("secrets.json"),
        fx.root().join("code/secrets.json"),
    )
    .unwrap();
    let text = SEED_V1.replace(
        "secrets = \"secrets.json\"",
        "secrets = \"code/secrets.json\"",
    );
    assert_eq!(
        fx.err(&text),
        "mse.toml:13: cloud.secrets: code/secrets.json is inside the code directory ./code: move it out (the code directory is packaged and shared with your users)"
    );
    std::fs::copy(
        fx.root().join("key.secret.pem"),
        fx.root().join("code/key.pem"),
    )
    .unwrap();
    let text = SEED_V1.replace("./key.secret.pem", "./code/key.pem");
    assert_eq!(
        fx.err(&text),
        "mse.toml:18: cloud.ssl.private_key: ./code/key.pem is inside the code directory ./code: move it out (the code directory is packaged and shared with your users)"
    );
}

#[test]
fn secrets_must_be_a_json_object() {
    let fx = Fixture::new();
    std::fs::write(fx.root().join("secrets.json"), "[1, 2]").unwrap();
    assert_eq!(
        fx.err(SEED_V1),
        "mse.toml:13: cloud.secrets: secrets.json: must be a JSON object, got an array"
    );
    std::fs::write(
        fx.root().join("secrets.json"),
        "{\n  \"login\": \"username\",\n  \"password\" \"azerty\"\n}",
    )
    .unwrap();
    assert_eq!(
        fx.err(SEED_V1),
        "mse.toml:13: cloud.secrets: secrets.json:3:14: invalid JSON: expected `:`"
    );
}

#[test]
fn load_secrets_error_never_shows_values() {
    let fx = Fixture::new();
    let path = fx.root().join("s.json");
    std::fs::write(&path, "{\"password\": \"hunter2\" \"x\"}").unwrap();
    let err = mse_conf::load_secrets(&path).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.ends_with("s.json:1:24: invalid JSON: expected `,` or `}`"),
        "{err}"
    );
}

#[test]
fn name_length() {
    let fx = Fixture::new();
    let text = MINIMAL_V1.replace("name = \"demo\"", "name = \"  \"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:1: name must be 1 to 255 characters, got \"  \""
    );
    let text = MINIMAL_V1.replace("\"4g-eu-001\"", "\"a-very-long-hardware-name\"");
    assert_eq!(
        fx.err(&text),
        "mse.toml:12: cloud.hardware must be 1 to 16 characters, got \"a-very-long-hardware-name\""
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = AppConf::load(&dir.path().join("mse.toml")).unwrap_err();
    assert_eq!(err.line, None);
    assert!(
        err.to_string()
            .ends_with("mse.toml: cannot read: No such file or directory (os error 2)")
    );
}

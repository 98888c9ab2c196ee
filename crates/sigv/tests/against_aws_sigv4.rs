//! Property tests against the real signer of the AWS SDK for Rust
//! (`aws-sigv4`): random requests signed by it, in the header and as
//! presigned URLs, with the settings the SDK uses for S3 (no double encoding,
//! no path normalisation, `x-amz-content-sha256`) and for the other services,
//! must be accepted by `parse` + `verify`; the same requests with the wrong
//! secret or a changed signed header must be rejected.

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use mallee_sigv::{RequestParts, SigError, SignedBy, parse, sha256_hex};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use proptest::prelude::*;
use time::OffsetDateTime;

const AK: &str = "AKIDPROPTEST";
const SECRET: &str = "s3cr3t/Key+With=Odd/Chars0123456789abcd";

/// What must be encoded for `http::Uri` to accept a path or query.
const WIRE_MIN: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');
/// Also `&`, `=` and `+`, which would change a query item's meaning.
const WIRE_QUERY: &AsciiSet = &WIRE_MIN.add(b'&').add(b'=').add(b'+');
/// Also `/`, for path segments.
const WIRE_SEGMENT: &AsciiSet = &WIRE_MIN.add(b'/');

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => proptest::char::range('A', 'Z'),
            1 => proptest::char::range('0', '9'),
            2 => proptest::sample::select(vec![
                ' ', '-', '_', '.', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=',
                ':', '@', '%', '/', '?', '#', '[', ']', 'é', 'ß', '☃', '𝄞',
            ]),
        ],
        0..8,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A wire path: segments encoded strictly or loosely, "." and ".." and
/// empty segments (double slashes) included.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => text(),
        1 => Just(String::new()),
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
    ];
    (
        proptest::collection::vec((segment, any::<bool>()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(segments, trailing)| {
            let mut p = String::new();
            for (s, strict) in &segments {
                p.push('/');
                if *strict {
                    p.push_str(&mallee_sigv::uri_encode(s, true));
                } else {
                    p.push_str(&utf8_percent_encode(s, WIRE_SEGMENT).to_string());
                }
            }
            if trailing || p.is_empty() {
                p.push('/');
            }
            p
        })
}

/// A wire query string: duplicates, empty values, names without `=`.
fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        2 => Just("a".to_owned()),
        1 => Just("B".to_owned()),
        1 => Just("prefix".to_owned()),
        3 => text().prop_filter("non-empty", |s| !s.is_empty()),
    ];
    let value = prop_oneof![1 => Just(String::new()), 3 => text()];
    proptest::collection::vec((name, value, 0..3u8, any::<bool>()), 0..5).prop_map(|items| {
        items
            .into_iter()
            .map(|(n, v, form, strict)| {
                let enc = |s: &str| {
                    if strict {
                        mallee_sigv::uri_encode(s, true)
                    } else {
                        utf8_percent_encode(s, WIRE_QUERY).to_string()
                    }
                };
                match form {
                    0 if v.is_empty() => enc(&n),
                    _ => format!("{}={}", enc(&n), enc(&v)),
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn header_value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            5 => proptest::char::range('!', '~'),
            2 => Just(' '),
        ],
        0..12,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = proptest::sample::select(vec![
        "x-amz-meta-a",
        "X-Amz-Meta-B",
        "x-custom",
        "Content-Type",
        "x-amz-storage-class",
    ]);
    proptest::collection::vec((name.prop_map(str::to_owned), header_value()), 0..4)
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    service: &'static str,
    region: &'static str,
    host: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    token: Option<&'static str>,
    time: u64,
    presigned: bool,
    expires: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(vec!["GET", "PUT", "POST", "DELETE", "HEAD"]),
        proptest::sample::select(vec!["ec2", "s3", "iam", "sts"]),
        proptest::sample::select(vec!["us-east-1", "eu-west-2", "mallee"]),
        proptest::sample::select(vec![
            "example.com",
            "bucket.s3.mallee.test:8773",
            "127.0.0.1:8773",
        ]),
        path(),
        query(),
        headers(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::option::of(Just("token/with+odd=chars")),
        // 2001 .. 2033
        978_307_200u64..2_000_000_000u64,
        any::<bool>(),
        1u64..=604_800,
    )
        .prop_map(
            |(
                method,
                service,
                region,
                host,
                path,
                query,
                headers,
                body,
                token,
                time,
                presigned,
                expires,
            )| Case {
                method,
                service,
                region,
                host,
                path,
                query,
                headers,
                body,
                token,
                time,
                presigned,
                expires,
            },
        )
}

/// Signs `case` with aws-sigv4 and returns the request as a server receives it.
fn sign_with_sdk(case: &Case) -> (String, String, Vec<(String, String)>) {
    let identity: Identity =
        Credentials::new(AK, SECRET, case.token.map(str::to_owned), None, "proptest").into();
    let mut settings = SigningSettings::default();
    let s3 = case.service == "s3";
    if s3 {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        if !case.presigned {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
    }
    if case.presigned {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(case.expires));
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(case.region)
        .name(case.service)
        .time(UNIX_EPOCH + Duration::from_secs(case.time))
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let uri = if case.query.is_empty() {
        format!("http://{}{}", case.host, case.path)
    } else {
        format!("http://{}{}?{}", case.host, case.path, case.query)
    };
    let body = if s3 && case.presigned {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(&case.body)
    };
    let signable = SignableRequest::new(
        case.method,
        uri.clone(),
        case.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signs").into_parts();
    let mut builder = http::Request::builder().method(case.method).uri(&uri);
    for (n, v) in &case.headers {
        builder = builder.header(n, v);
    }
    let mut request = builder.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);

    let mut headers = vec![("Host".to_owned(), case.host.to_owned())];
    for (n, v) in request.headers() {
        headers.push((n.as_str().to_owned(), v.to_str().expect("ascii").to_owned()));
    }
    (
        request.uri().path().to_owned(),
        request.uri().query().unwrap_or_default().to_owned(),
        headers,
    )
}

fn now_for(case: &Case, offset: i64) -> OffsetDateTime {
    let t = i64::try_from(case.time).expect("fits");
    OffsetDateTime::from_unix_timestamp(t + offset).expect("valid time")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn accepts_what_aws_sigv4_signs(case in case(), skew in -899i64..=899) {
        let (path, query, headers) = sign_with_sdk(&case);
        let req = RequestParts {
            method: case.method,
            raw_path: &path,
            raw_query: &query,
            headers: &headers,
            form_params: &[],
        };
        let signed = parse(&req).expect("parses").expect("signed");
        match (&signed, case.presigned) {
            (SignedBy::V4Header(_), false) | (SignedBy::V4Query(_), true) => {}
            other => panic!("unexpected kind {other:?}"),
        }
        prop_assert_eq!(signed.access_key(), AK);
        prop_assert_eq!(signed.service(), Some(case.service));
        prop_assert_eq!(signed.region(), Some(case.region));
        prop_assert_eq!(signed.security_token(), case.token);

        let s3 = case.service == "s3";
        let payload = sha256_hex(&case.body);
        // S3 header auth: the payload hash from x-amz-content-sha256 (None)
        // or as computed; presigned S3: UNSIGNED-PAYLOAD (None).
        let payload_arg = match (s3, case.presigned) {
            (true, true) => None,
            (true, false) if case.body.len() % 2 == 0 => None,
            _ => Some(payload.as_str()),
        };
        let now = if case.presigned {
            // Anywhere in the validity window.
            now_for(&case, i64::try_from(case.expires).expect("fits") * (skew + 899) / 1798)
        } else {
            now_for(&case, skew)
        };
        let verdict = signed.verify(&req, SECRET, payload_arg, None, now);
        prop_assert!(verdict.is_ok(), "rejected: {:?}\npath {path:?} query {query:?}", verdict);

        // The wrong secret is rejected.
        let wrong = SECRET.replacen('s', "S", 1);
        let verdict = signed.verify(&req, &wrong, payload_arg, None, now);
        prop_assert!(matches!(verdict, Err(SigError::SignatureDoesNotMatch { .. })), "{:?}", verdict);

        // Changing a signed header is rejected.
        let mut changed = headers.clone();
        let host = changed.iter_mut().find(|(n, _)| n == "Host").expect("host");
        host.1.push('x');
        let req2 = RequestParts { headers: &changed, ..req };
        let verdict = signed.verify(&req2, SECRET, payload_arg, None, now);
        prop_assert!(matches!(verdict, Err(SigError::SignatureDoesNotMatch { .. })), "{:?}", verdict);

        // A different body is rejected where the body is signed.
        if !s3 {
            let other = sha256_hex(b"something else");
            let verdict = signed.verify(&req, SECRET, Some(&other), None, now);
            prop_assert!(matches!(verdict, Err(SigError::SignatureDoesNotMatch { .. })), "{:?}", verdict);
        }
    }

    #[test]
    fn rejects_outside_the_time_window(case in case(), beyond in 1i64..100_000) {
        let (path, query, headers) = sign_with_sdk(&case);
        let req = RequestParts {
            method: case.method,
            raw_path: &path,
            raw_query: &query,
            headers: &headers,
            form_params: &[],
        };
        let signed = parse(&req).expect("parses").expect("signed");
        let payload = sha256_hex(&case.body);
        let payload_arg = if case.service == "s3" { None } else { Some(payload.as_str()) };
        if case.presigned {
            let late = now_for(&case, i64::try_from(case.expires).expect("fits") + beyond);
            let verdict = signed.verify(&req, SECRET, payload_arg, None, late);
            prop_assert!(matches!(verdict, Err(SigError::RequestExpired { .. })), "{:?}", verdict);
            let early = now_for(&case, -900 - beyond);
            let verdict = signed.verify(&req, SECRET, payload_arg, None, early);
            prop_assert!(matches!(verdict, Err(SigError::NotYetValid { .. })), "{:?}", verdict);
        } else {
            for offset in [900 + beyond, -900 - beyond] {
                let verdict = signed.verify(&req, SECRET, payload_arg, None, now_for(&case, offset));
                prop_assert!(matches!(verdict, Err(SigError::TimeTooSkewed { .. })), "{:?}", verdict);
            }
        }
    }
}

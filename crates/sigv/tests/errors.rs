//! Every way a signature is refused, and the edges of the time windows.
//! Signatures marked "independent" were computed outside this crate
//! (Python's hmac/hashlib) from the strings to sign written out here.

use mallee_sigv::{RequestParts, SigError, SignedBy, V2Method, V2Validity, parse};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const T: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);
/// get-vanilla of the SigV4 test suite.
const VANILLA_SIG: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn req<'a>(path: &'a str, query: &'a str, headers: &'a [(String, String)]) -> RequestParts<'a> {
    RequestParts {
        method: "GET",
        raw_path: path,
        raw_query: query,
        headers,
        form_params: &[],
    }
}

fn parse_err(r: &RequestParts<'_>) -> SigError {
    match parse(r) {
        Err(e) => e,
        Ok(s) => panic!("parsed: {s:?}"),
    }
}

fn vanilla_headers(auth: &str) -> Vec<(String, String)> {
    h(&[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", auth),
    ])
}

fn vanilla_auth() -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={VANILLA_SIG}"
    )
}

fn malformed(e: SigError) -> String {
    match e {
        SigError::Malformed(m) => m,
        other => panic!("not Malformed: {other:?}"),
    }
}

fn malformed_query(e: SigError) -> String {
    match e {
        SigError::MalformedQuery(m) => m,
        other => panic!("not MalformedQuery: {other:?}"),
    }
}

#[test]
fn anonymous_is_none() {
    let headers = h(&[("Host", "example.com")]);
    assert_eq!(parse(&req("/", "a=b&acl", &headers)), Ok(None));
}

// ------------------------------------------------------------ SigV4 header

#[test]
fn v4_header_accepts_the_vanilla_vector_and_its_accessors() {
    let headers = vanilla_headers(&vanilla_auth());
    let r = req("/", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    assert_eq!(s.access_key(), "AKIDEXAMPLE");
    assert_eq!(s.service(), Some("service"));
    assert_eq!(s.region(), Some("us-east-1"));
    assert_eq!(s.security_token(), None);
    s.verify(&r, SECRET, None, None, T).expect("verifies");
}

#[test]
fn v4_header_without_spaces_or_with_extra_spaces_parses() {
    for auth in [
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request,SignedHeaders=host;x-amz-date,Signature={VANILLA_SIG}"
        ),
        format!(
            "AWS4-HMAC-SHA256   Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request ,  SignedHeaders=host;x-amz-date,   Signature={VANILLA_SIG}"
        ),
    ] {
        let headers = vanilla_headers(&auth);
        let r = req("/", "", &headers);
        let s = parse(&r).expect("parses").expect("signed");
        s.verify(&r, SECRET, None, None, T).expect("verifies");
    }
}

#[test]
fn v4_header_missing_parts() {
    let cases = [
        (
            "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abc",
            "Authorization header requires 'Credential' parameter.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date",
            "Authorization header requires 'Signature' parameter.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, Signature=abc",
            "Authorization header requires 'SignedHeaders' parameter.",
        ),
    ];
    for (auth, want) in cases {
        let headers = vanilla_headers(auth);
        let m = malformed(parse_err(&req("/", "", &headers)));
        assert!(m.starts_with(want), "{m}");
        assert!(m.ends_with(&format!("Authorization={auth}")), "{m}");
    }
    // All of them at once, and no date header.
    let headers = h(&[
        ("Host", "example.amazonaws.com"),
        ("Authorization", "AWS4-HMAC-SHA256"),
    ]);
    let m = malformed(parse_err(&req("/", "", &headers)));
    for part in [
        "'Credential'",
        "'Signature'",
        "'SignedHeaders'",
        "'X-Amz-Date' or a 'Date'",
    ] {
        assert!(m.contains(part), "{m}");
    }
}

#[test]
fn v4_header_missing_date() {
    let headers = h(&[
        ("Host", "example.amazonaws.com"),
        ("Authorization", &vanilla_auth()),
    ]);
    let m = malformed(parse_err(&req("/", "", &headers)));
    assert!(
        m.starts_with(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        ),
        "{m}"
    );
}

#[test]
fn v4_header_bad_algorithm() {
    for (auth, scheme) in [
        (
            "AWS4-HMAC-SHA512 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA512",
        ),
        (
            "AWS4-ECDSA-P256-SHA256 Credential=a/b/c/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-ECDSA-P256-SHA256",
        ),
        ("Bearer abc", "Bearer"),
        ("Basic dXNlcjpwYXNz", "Basic"),
    ] {
        let headers = vanilla_headers(auth);
        assert_eq!(
            parse_err(&req("/", "", &headers)),
            SigError::UnsupportedAlgorithm(scheme.to_owned())
        );
    }
}

#[test]
fn v4_header_bad_date() {
    let headers = h(&[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "2015-08-30T12:36:00Z"),
        ("Authorization", &vanilla_auth()),
    ]);
    assert!(
        matches!(parse_err(&req("/", "", &headers)), SigError::BadDate(m) if m.contains("basic format"))
    );
    let headers = h(&[
        ("Host", "example.amazonaws.com"),
        ("Date", "yesterday"),
        ("Authorization", &vanilla_auth()),
    ]);
    assert!(matches!(
        parse_err(&req("/", "", &headers)),
        SigError::BadDate(_)
    ));
}

#[test]
fn v4_header_date_header_instead_of_x_amz_date() {
    // Independent: HMAC over the canonical request with `date;host` signed.
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=date;host, \
                Signature=1262aceaf1a79c7f0b69fda81cd744572fcbe2e4c23b647b4de183cd5a0f1075";
    let headers = h(&[
        ("Host", "example.amazonaws.com"),
        ("Date", "Sun, 30 Aug 2015 12:36:00 GMT"),
        ("Authorization", auth),
    ]);
    let r = req("/", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    s.verify(&r, SECRET, None, None, T).expect("verifies");
    let SignedBy::V4Header(v4) = s else {
        panic!("not V4Header")
    };
    assert_eq!(v4.amz_date, T);
}

#[test]
fn v4_header_bad_credential() {
    for (credential, want) in [
        (
            "AKIDEXAMPLE/20150830/us-east-1/aws4_request",
            "the Credential is mal-formed",
        ),
        (
            "AKIDEXAMPLE/20150830/us-east-1/service/extra/aws4_request",
            "the Credential is mal-formed",
        ),
        (
            "/20150830/us-east-1/service/aws4_request",
            "the Credential is mal-formed",
        ),
        (
            "AKIDEXAMPLE/2015-08-30/us-east-1/service/aws4_request",
            "Invalid credential date",
        ),
        (
            "AKIDEXAMPLE/20150830/us-east-1/service/aws5_request",
            "valid terminator: 'aws4_request', not 'aws5_request'",
        ),
    ] {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, Signature={VANILLA_SIG}"
        );
        let headers = vanilla_headers(&auth);
        let m = malformed(parse_err(&req("/", "", &headers)));
        assert!(m.contains(want), "{credential}: {m}");
    }
}

#[test]
fn v4_header_scope_date_must_match_x_amz_date() {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={VANILLA_SIG}"
    );
    let headers = vanilla_headers(&auth);
    let m = malformed(parse_err(&req("/", "", &headers)));
    assert_eq!(
        m,
        "Invalid credential date. Date is not the same as X-Amz-Date."
    );
}

#[test]
fn v4_header_host_must_be_signed() {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=x-amz-date, Signature={VANILLA_SIG}"
    );
    let headers = vanilla_headers(&auth);
    let m = malformed(parse_err(&req("/", "", &headers)));
    assert!(m.contains("'Host'"), "{m}");
}

#[test]
fn v4_header_skew_both_directions() {
    let headers = vanilla_headers(&vanilla_auth());
    let r = req("/", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    for edge in [Duration::minutes(15), -Duration::minutes(15)] {
        s.verify(&r, SECRET, None, None, T + edge)
            .expect("15 minutes is fine");
    }
    for beyond in [
        Duration::minutes(15) + Duration::seconds(1),
        -Duration::minutes(15) - Duration::seconds(1),
    ] {
        assert_eq!(
            s.verify(&r, SECRET, None, None, T + beyond),
            Err(SigError::TimeTooSkewed {
                request_time: T,
                server_time: T + beyond
            })
        );
    }
}

#[test]
fn v4_time_is_checked_before_the_signature() {
    let auth = vanilla_auth().replace(VANILLA_SIG, &"0".repeat(64));
    let headers = vanilla_headers(&auth);
    let r = req("/", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    assert!(matches!(
        s.verify(&r, SECRET, None, None, T + Duration::hours(1)),
        Err(SigError::TimeTooSkewed { .. })
    ));
    match s.verify(&r, SECRET, None, None, T) {
        Err(SigError::SignatureDoesNotMatch {
            string_to_sign,
            canonical_request,
        }) => {
            assert!(string_to_sign.starts_with("AWS4-HMAC-SHA256\n20150830T123600Z\n"));
            assert!(canonical_request.starts_with("GET\n/\n\nhost:example.amazonaws.com\n"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v4_security_token_is_reported() {
    let headers = h(&[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("X-Amz-Security-Token", "tok"),
        ("Authorization", &vanilla_auth()),
    ]);
    let s = parse(&req("/", "", &headers))
        .expect("parses")
        .expect("signed");
    assert_eq!(s.security_token(), Some("tok"));
}

// ------------------------------------------------------------- SigV4 query

const VANILLA_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Expires=3600&X-Amz-Signature=e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn v4_query_window() {
    let headers = h(&[("Host", "example.amazonaws.com")]);
    let r = req("/", VANILLA_QUERY, &headers);
    let s = parse(&r).expect("parses").expect("signed");
    assert!(matches!(s, SignedBy::V4Query(_)));
    for ok in [T - Duration::minutes(15), T, T + Duration::seconds(3600)] {
        s.verify(&r, SECRET, Some(EMPTY), None, ok)
            .expect("inside the window");
    }
    assert_eq!(
        s.verify(&r, SECRET, Some(EMPTY), None, T + Duration::seconds(3601)),
        Err(SigError::RequestExpired {
            expires_at: T + Duration::seconds(3600),
            server_time: T + Duration::seconds(3601)
        })
    );
    assert!(matches!(
        s.verify(&r, SECRET, Some(EMPTY), None, T - Duration::minutes(16)),
        Err(SigError::NotYetValid { .. })
    ));
}

fn query_with(replace: &str, with: &str) -> String {
    VANILLA_QUERY.replace(replace, with)
}

#[test]
fn v4_query_malformed() {
    let headers = h(&[("Host", "example.amazonaws.com")]);
    let cases = [
        (
            query_with("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            "X-Amz-Algorithm only supports",
        ),
        (
            query_with("X-Amz-Credential=", "X-Amz-Credentials="),
            "requires the X-Amz-Algorithm",
        ),
        (
            query_with("X-Amz-SignedHeaders=host&", ""),
            "requires the X-Amz-Algorithm",
        ),
        (
            query_with("X-Amz-Date=20150830T123600Z&", ""),
            "requires the X-Amz-Algorithm",
        ),
        (
            query_with("X-Amz-Expires=3600", "X-Amz-Expires=604801"),
            "less than a week",
        ),
        (
            query_with("X-Amz-Expires=3600", "X-Amz-Expires=-1"),
            "non-negative",
        ),
        (
            query_with("X-Amz-Expires=3600", "X-Amz-Expires=soon"),
            "should be a number",
        ),
        (
            query_with("X-Amz-Date=20150830T123600Z", "X-Amz-Date=20150830"),
            "ISO8601 Long Format",
        ),
        (
            query_with("%2F20150830%2F", "%2F20150831%2F"),
            "not the same as X-Amz-Date",
        ),
        (query_with("aws4_request", "aws4"), "valid terminator"),
        (
            query_with("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date"),
            "'Host'",
        ),
    ];
    for (query, want) in cases {
        let m = malformed_query(parse_err(&req("/", &query, &headers)));
        assert!(m.contains(want), "{query}: {m}");
    }
    // Only the algorithm or only the signature: still query auth, incomplete.
    let m = malformed_query(parse_err(&req("/", "X-Amz-Signature=abc", &headers)));
    assert!(m.contains("X-Amz-Algorithm only supports"), "{m}");
}

#[test]
fn v4_query_expires_exactly_a_week_is_fine() {
    let headers = h(&[("Host", "example.amazonaws.com")]);
    let q = query_with("X-Amz-Expires=3600", "X-Amz-Expires=604800");
    let s = parse(&req("/", &q, &headers))
        .expect("parses")
        .expect("signed");
    let SignedBy::V4Query(v4) = s else {
        panic!("not V4Query")
    };
    assert_eq!(v4.expires, Some(604_800));
}

#[test]
fn v4_query_expires_required_for_s3_only() {
    let headers = h(&[("Host", "example.amazonaws.com")]);
    let q = query_with("&X-Amz-Expires=3600", "");
    let s = parse(&req("/", &q, &headers))
        .expect("parses")
        .expect("signed");
    let SignedBy::V4Query(v4) = s else {
        panic!("not V4Query")
    };
    assert_eq!(v4.expires, None);
    let q = q.replace("%2Fservice%2F", "%2Fs3%2F");
    let m = malformed_query(parse_err(&req("/", &q, &headers)));
    assert!(m.contains("X-Amz-Expires parameters"), "{m}");
}

#[test]
fn v4_query_without_expires_uses_the_skew_window() {
    // Changing the query changes the signature, but the time is checked first.
    let headers = h(&[("Host", "example.amazonaws.com")]);
    let q = query_with("&X-Amz-Expires=3600", "");
    let r = req("/", &q, &headers);
    let s = parse(&r).expect("parses").expect("signed");
    assert!(matches!(
        s.verify(&r, SECRET, Some(EMPTY), None, T + Duration::minutes(16)),
        Err(SigError::TimeTooSkewed { .. })
    ));
    assert!(matches!(
        s.verify(&r, SECRET, Some(EMPTY), None, T),
        Err(SigError::SignatureDoesNotMatch { .. })
    ));
}

#[test]
fn only_one_auth_mechanism() {
    let headers = vanilla_headers(&vanilla_auth());
    assert_eq!(
        parse_err(&req("/", VANILLA_QUERY, &headers)),
        SigError::MultipleAuthMechanisms
    );
    assert_eq!(
        parse_err(&req(
            "/",
            "AWSAccessKeyId=a&Signature=b&Expires=1",
            &headers
        )),
        SigError::MultipleAuthMechanisms
    );
    let host = h(&[("Host", "example.amazonaws.com")]);
    let q = format!("{VANILLA_QUERY}&AWSAccessKeyId=a&Signature=b&Expires=1");
    assert_eq!(
        parse_err(&req("/", &q, &host)),
        SigError::MultipleAuthMechanisms
    );
}

// -------------------------------------------------------------- S3 SigV2

fn s3_v2_headers(date_name: &str, date: &str, auth: &str) -> Vec<(String, String)> {
    h(&[
        ("Host", "johnsmith.s3.amazonaws.com"),
        (date_name, date),
        ("Authorization", auth),
    ])
}

#[test]
fn s3_v2_header_malformed() {
    for auth in ["AWS AKIAIOSFODNN7EXAMPLE", "AWS :sig", "AWS AKID:", "AWS "] {
        let headers = s3_v2_headers("Date", "Tue, 27 Mar 2007 19:36:42 +0000", auth);
        let e = parse(&req("/photos/puppy.jpg", "", &headers));
        assert!(
            matches!(&e, Err(SigError::Malformed(m)) if m.contains("Expected AwsAccessKeyId:signature")),
            "{auth}: {e:?}"
        );
    }
}

#[test]
fn s3_v2_header_missing_or_bad_date() {
    let auth = "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=";
    let t = datetime!(2007-03-27 19:36:42 UTC);
    let headers = h(&[
        ("Host", "johnsmith.s3.amazonaws.com"),
        ("Authorization", auth),
    ]);
    let r = req("/photos/puppy.jpg", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    assert_eq!(
        s.verify(&r, DOC_SECRET, None, Some("johnsmith"), t),
        Err(SigError::MissingDate)
    );
    let headers = s3_v2_headers("Date", "the 27th of March", auth);
    let r = req("/photos/puppy.jpg", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    assert_eq!(
        s.verify(&r, DOC_SECRET, None, Some("johnsmith"), t),
        Err(SigError::MissingDate)
    );
}

#[test]
fn s3_v2_header_skew_both_directions() {
    let auth = "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=";
    let t = datetime!(2007-03-27 19:36:42 UTC);
    let headers = s3_v2_headers("Date", "Tue, 27 Mar 2007 19:36:42 +0000", auth);
    let r = req("/photos/puppy.jpg", "", &headers);
    let s = parse(&r).expect("parses").expect("signed");
    for ok in [t - Duration::minutes(15), t + Duration::minutes(15)] {
        s.verify(&r, DOC_SECRET, None, Some("johnsmith"), ok)
            .expect("within 15 minutes");
    }
    for bad in [t - Duration::minutes(16), t + Duration::minutes(16)] {
        assert!(matches!(
            s.verify(&r, DOC_SECRET, None, Some("johnsmith"), bad),
            Err(SigError::TimeTooSkewed { request_time, .. }) if request_time == t
        ));
    }
    // The bucket matters: path style would sign another resource.
    assert!(matches!(
        s.verify(&r, DOC_SECRET, None, None, t),
        Err(SigError::SignatureDoesNotMatch { string_to_sign, .. })
            if string_to_sign.ends_with("\n/photos/puppy.jpg")
    ));
}

#[test]
fn s3_v2_presigned_malformed_and_expired() {
    let headers = h(&[("Host", "johnsmith.s3.amazonaws.com")]);
    for q in [
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D",
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620",
        "Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620",
    ] {
        let m = malformed_query(parse_err(&req("/photos/puppy.jpg", q, &headers)));
        assert!(
            m.contains("requires the Signature, Expires and AWSAccessKeyId"),
            "{m}"
        );
    }
    let m = malformed_query(parse_err(&req(
        "/photos/puppy.jpg",
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=tomorrow",
        &headers,
    )));
    assert!(m.contains("seconds since epoch"), "{m}");

    // A '+' left unencoded in the signature still matches.
    let q = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM+WFzoENXmpNDUsSn8%3D&Expires=1175139620";
    let r = req("/photos/puppy.jpg", q, &headers);
    let s = parse(&r).expect("parses").expect("signed");
    let expiry = datetime!(2007-03-29 03:40:20 UTC);
    s.verify(&r, DOC_SECRET, None, Some("johnsmith"), expiry)
        .expect("verifies");
    assert!(matches!(
        s.verify(&r, DOC_SECRET, None, Some("johnsmith"), expiry + Duration::seconds(1)),
        Err(SigError::RequestExpired { expires_at, .. }) if expires_at == expiry
    ));
}

// ------------------------------------------------------- query API SigV2

fn api_req<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    form: &'a [(String, String)],
) -> RequestParts<'a> {
    RequestParts {
        method,
        raw_path: path,
        raw_query: query,
        headers,
        form_params: form,
    }
}

/// The AWS general reference example, sent as a POST form (independent).
fn emr_form(overrides: &[(&str, &str)], drop: &[&str]) -> Vec<(String, String)> {
    let mut form = h(&[
        ("Action", "DescribeJobFlows"),
        ("Version", "2009-03-31"),
        ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        ("Timestamp", "2011-10-03T15:19:30"),
        ("Signature", "wseguMzBRgA/4/fan8ZwEa0PIF+ws4WFbTJcG1ts5RY="),
    ]);
    form.retain(|(n, _)| !drop.contains(&n.as_str()));
    for (n, v) in overrides {
        match form.iter_mut().find(|(name, _)| name == n) {
            Some(item) => item.1 = (*v).to_owned(),
            None => form.push(((*n).to_owned(), (*v).to_owned())),
        }
    }
    form
}

const EMR_TIME: OffsetDateTime = datetime!(2011-10-03 15:19:30 UTC);

#[test]
fn query_api_v2_in_a_form_body() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com")]);
    let form = emr_form(&[], &[]);
    let r = api_req("POST", "/", "", &headers, &form);
    let s = parse(&r).expect("parses").expect("signed");
    let SignedBy::V2QueryApi(v2) = &s else {
        panic!("not V2QueryApi")
    };
    assert_eq!(v2.method, V2Method::HmacSha256);
    assert_eq!(v2.validity, V2Validity::Timestamp(EMR_TIME));
    s.verify(&r, DOC_SECRET, None, None, EMR_TIME)
        .expect("verifies");
    // The host is part of the signature.
    let other = h(&[("Host", "ec2.amazonaws.com")]);
    let r = api_req("POST", "/", "", &other, &form);
    assert!(matches!(
        s.verify(&r, DOC_SECRET, None, None, EMR_TIME),
        Err(SigError::SignatureDoesNotMatch { .. })
    ));
}

#[test]
fn query_api_v2_hmac_sha1_with_special_characters_and_port() {
    // Independent: HMAC-SHA1 of
    // POST\nlocalhost:8773\n/services/compute\nAWSAccessKeyId=…&Filter.1.Value.1=my%20web%2Bserver~&…
    let headers = h(&[("Host", "LocalHost:8773")]);
    let form = h(&[
        ("Action", "DescribeInstances"),
        ("Version", "2016-11-15"),
        ("Filter.1.Name", "tag:Name"),
        ("Filter.1.Value.1", "my web+server~"),
        ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA1"),
        ("Timestamp", "2011-10-03T15:19:30Z"),
        ("Signature", "an+/8u5u37sXL2suS6oyeN1zdDc="),
    ]);
    let r = api_req("POST", "/services/compute", "", &headers, &form);
    let s = parse(&r).expect("parses").expect("signed");
    let SignedBy::V2QueryApi(v2) = &s else {
        panic!("not V2QueryApi")
    };
    assert_eq!(v2.method, V2Method::HmacSha1);
    s.verify(&r, DOC_SECRET, None, None, EMR_TIME)
        .expect("verifies");
}

#[test]
fn query_api_v2_default_port_in_host_header() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com:443")]);
    let form = emr_form(&[], &[]);
    let r = api_req("POST", "/", "", &headers, &form);
    let s = parse(&r).expect("parses").expect("signed");
    s.verify(&r, DOC_SECRET, None, None, EMR_TIME)
        .expect("verifies");
}

#[test]
fn query_api_v2_unsupported_version_and_method() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com")]);
    for (version, want) in [("1", "1"), ("0", "0"), ("4", "4")] {
        let form = emr_form(&[("SignatureVersion", version)], &[]);
        assert_eq!(
            parse_err(&api_req("POST", "/", "", &headers, &form)),
            SigError::UnsupportedSignatureVersion(want.to_owned())
        );
    }
    let form = emr_form(&[], &["SignatureVersion"]);
    assert_eq!(
        parse_err(&api_req("POST", "/", "", &headers, &form)),
        SigError::UnsupportedSignatureVersion(String::new())
    );
    let form = emr_form(&[("SignatureMethod", "HmacMD5")], &[]);
    assert_eq!(
        parse_err(&api_req("POST", "/", "", &headers, &form)),
        SigError::UnsupportedAlgorithm("HmacMD5".to_owned())
    );
}

#[test]
fn query_api_v2_missing_parameters() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com")]);
    for missing in ["AWSAccessKeyId", "Signature", "SignatureMethod"] {
        let form = emr_form(&[], &[missing]);
        let m = malformed(parse_err(&api_req("POST", "/", "", &headers, &form)));
        assert!(m.contains(missing), "{m}");
    }
    let form = emr_form(&[], &["Timestamp"]);
    let m = malformed(parse_err(&api_req("POST", "/", "", &headers, &form)));
    assert!(m.contains("Timestamp or an Expires"), "{m}");
    let form = emr_form(&[("Expires", "2011-10-03T15:29:30Z")], &[]);
    let m = malformed(parse_err(&api_req("POST", "/", "", &headers, &form)));
    assert!(m.contains("mutually exclusive"), "{m}");
    let form = emr_form(&[("Timestamp", "last tuesday")], &[]);
    assert!(matches!(
        parse_err(&api_req("POST", "/", "", &headers, &form)),
        SigError::BadDate(_)
    ));
}

#[test]
fn query_api_v2_timestamp_skew_both_directions() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com")]);
    let form = emr_form(&[], &[]);
    let r = api_req("POST", "/", "", &headers, &form);
    let s = parse(&r).expect("parses").expect("signed");
    for ok in [
        EMR_TIME - Duration::minutes(15),
        EMR_TIME + Duration::minutes(15),
    ] {
        s.verify(&r, DOC_SECRET, None, None, ok)
            .expect("within 15 minutes");
    }
    for bad in [
        EMR_TIME - Duration::minutes(16),
        EMR_TIME + Duration::minutes(16),
    ] {
        assert_eq!(
            s.verify(&r, DOC_SECRET, None, None, bad),
            Err(SigError::TimeTooSkewed {
                request_time: EMR_TIME,
                server_time: bad
            })
        );
    }
}

#[test]
fn query_api_v2_expires() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com")]);
    let form = emr_form(&[("Expires", "2011-10-03T16:00:00Z")], &["Timestamp"]);
    let r = api_req("POST", "/", "", &headers, &form);
    let s = parse(&r).expect("parses").expect("signed");
    let SignedBy::V2QueryApi(v2) = &s else {
        panic!("not V2QueryApi")
    };
    let expires = datetime!(2011-10-03 16:00:00 UTC);
    assert_eq!(v2.validity, V2Validity::Expires(expires));
    // Before expiry the time is fine (and this signature is not the one for
    // these parameters, so the signature check is what fails).
    assert!(matches!(
        s.verify(&r, DOC_SECRET, None, None, expires - Duration::hours(5)),
        Err(SigError::SignatureDoesNotMatch { .. })
    ));
    assert_eq!(
        s.verify(&r, DOC_SECRET, None, None, expires + Duration::seconds(1)),
        Err(SigError::RequestExpired {
            expires_at: expires,
            server_time: expires + Duration::seconds(1)
        })
    );
}

#[test]
fn query_api_v2_security_token() {
    let headers = h(&[("Host", "elasticmapreduce.amazonaws.com")]);
    let form = emr_form(&[("SecurityToken", "tok")], &[]);
    let s = parse(&api_req("POST", "/", "", &headers, &form))
        .expect("parses")
        .expect("signed");
    assert_eq!(s.security_token(), Some("tok"));
    assert_eq!(s.service(), None);
    assert!(s.chunk_verifier(DOC_SECRET).is_none());
}

/// botocore's HmacV1 signs a path-style bucket request `/bucket` with the
/// canonical resource `/bucket/`, as AWS defines it.
#[test]
fn v2_bucket_request_is_signed_with_trailing_slash() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let date = "Sun, 22 Nov 2026 03:55:16 GMT";
    let sts = format!("PUT\n\n\n{date}\n/v2bucket-one/");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"secret").expect("key");
    mac.update(sts.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let headers = vec![
        ("Host".to_string(), "127.0.0.1:8773".to_string()),
        ("Date".to_string(), date.to_string()),
        ("Authorization".to_string(), format!("AWS AKID:{signature}")),
    ];
    let req = mallee_sigv::RequestParts {
        method: "PUT",
        raw_path: "/v2bucket-one",
        raw_query: "",
        headers: &headers,
        form_params: &[],
    };
    let signed = mallee_sigv::parse(&req).expect("parse").expect("signed");
    let now = time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822)
        .expect("date");
    signed
        .verify(&req, "secret", None, None, now)
        .expect("bucket path signed with slash verifies");
    assert!(signed.verify(&req, "wrong", None, None, now).is_err());
}

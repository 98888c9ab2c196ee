//! The cloud's public DNS server (UDP and TCP, RFC 1035 and 7766):
//! authoritative for the
//! public domain (`REGION.compute.mallee`), it answers an instance's public
//! name with its public address and that address's reverse name (PTR)
//! with the public name, so hosts outside the instances' VPCs (an admin's
//! shell, `ssh root@ec2-198-18-0-23…`) reach instances by name. Names
//! nobody holds are NXDOMAIN; names of other domains are REFUSED, since
//! this server resolves nothing else. What a name means is the domain's
//! ([`mallee_cloud::public_dns`]); this module only reads and writes the
//! wire format.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use mallee_cloud::Cloud;
use mallee_cloud::public_dns::{Answer, PublicNames};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// Seconds resolvers may keep an answer: public addresses move (elastic
/// IPs), so briefly.
const TTL: u32 = 5;

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

const RCODE_FORMERR: u8 = 1;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// One question, as read from a query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    name: String,
    qtype: u16,
    qclass: u16,
    /// The question's bytes, echoed in the answer.
    raw: Vec<u8>,
}

/// A query's header fields an answer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    id: u16,
    opcode: u8,
    recursion_desired: bool,
}

/// Reads a query: its header and its one question. `Err` carries the
/// header (when readable) for a FORMERR/NOTIMP answer.
fn parse(packet: &[u8]) -> Result<(Header, Question), Option<(Header, u8)>> {
    if packet.len() < 12 {
        return Err(None);
    }
    let header = Header {
        id: u16::from_be_bytes([packet[0], packet[1]]),
        opcode: (packet[2] >> 3) & 0x0f,
        recursion_desired: packet[2] & 0x01 != 0,
    };
    if packet[2] & 0x80 != 0 {
        // An answer, not a query: never answer it (no loops).
        return Err(None);
    }
    if header.opcode != 0 {
        return Err(Some((header, RCODE_NOTIMP)));
    }
    let qdcount = u16::from_be_bytes([packet[4], packet[5]]);
    if qdcount != 1 {
        return Err(Some((header, RCODE_FORMERR)));
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(at).ok_or(Some((header, RCODE_FORMERR)))? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        // Queries carry no compression pointers; longer labels are invalid.
        if len > 63 {
            return Err(Some((header, RCODE_FORMERR)));
        }
        let label = packet
            .get(at..at + len)
            .ok_or(Some((header, RCODE_FORMERR)))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let fixed = packet
        .get(at..at + 4)
        .ok_or(Some((header, RCODE_FORMERR)))?;
    let question = Question {
        name: labels.join("."),
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
        raw: packet[12..at + 4].to_vec(),
    };
    if question.name.len() > 253 {
        return Err(Some((header, RCODE_FORMERR)));
    }
    Ok((header, question))
}

/// One resource record of an answer: its type and data.
type Record = (u16, Vec<u8>);

/// Writes an answer to `question` with `rcode` and `records` (all for the
/// question's name), authoritative.
fn answer(header: Header, question: Option<&Question>, rcode: u8, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend(header.id.to_be_bytes());
    // QR, opcode, AA (only when answering a question), RD copied.
    let aa = u8::from(question.is_some() && rcode != RCODE_REFUSED);
    out.push(0x80 | (header.opcode << 3) | (aa << 2) | u8::from(header.recursion_desired));
    out.push(rcode & 0x0f);
    out.extend(u16::from(question.is_some()).to_be_bytes());
    out.extend(u16::try_from(records.len()).unwrap_or(0).to_be_bytes());
    out.extend([0, 0, 0, 0]);
    if let Some(q) = question {
        out.extend(&q.raw);
        for (rtype, data) in records {
            // The name: a pointer to the question's (offset 12).
            out.extend([0xc0, 12]);
            out.extend(rtype.to_be_bytes());
            out.extend(CLASS_IN.to_be_bytes());
            out.extend(TTL.to_be_bytes());
            out.extend(u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
            out.extend(data);
        }
    }
    out
}

/// `name` in DNS label form.
fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend(label.as_bytes());
    }
    out.push(0);
    out
}

/// `23.0.18.198.in-addr.arpa` → 198.18.0.23.
fn reverse_address(name: &str) -> Option<Ipv4Addr> {
    let digits = name.strip_suffix(".in-addr.arpa")?;
    let mut octets: Vec<u8> = digits
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if octets.len() != 4 {
        return None;
    }
    octets.reverse();
    Some(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

/// The answer to one query packet (`None`: send nothing).
async fn respond(cloud: &Cloud, names: &PublicNames, packet: &[u8]) -> Option<Vec<u8>> {
    let (header, question) = match parse(packet) {
        Ok(parsed) => parsed,
        Err(Some((header, rcode))) => return Some(answer(header, None, rcode, &[])),
        Err(None) => return None,
    };
    let q = &question;
    if q.qclass != CLASS_IN {
        return Some(answer(header, Some(q), RCODE_REFUSED, &[]));
    }
    if let Some(ip) = reverse_address(&q.name) {
        return Some(match names.name_of(cloud, ip).await {
            Ok(Some(name)) if matches!(q.qtype, TYPE_PTR | TYPE_ANY) => {
                answer(header, Some(q), 0, &[(TYPE_PTR, encode_name(&name))])
            }
            // The name exists; it has no record of the type asked.
            Ok(Some(_)) => answer(header, Some(q), 0, &[]),
            // An address of the cloud's public ranges nobody holds has no
            // name; other addresses are not this server's to answer.
            Ok(None)
                if cloud
                    .config
                    .public_ranges
                    .iter()
                    .any(|r| r.cidr.contains(ip)) =>
            {
                answer(header, Some(q), RCODE_NXDOMAIN, &[])
            }
            Ok(None) => answer(header, Some(q), RCODE_REFUSED, &[]),
            Err(e) => {
                tracing::warn!(error = %e, "public DNS: reading addresses failed");
                answer(header, Some(q), RCODE_SERVFAIL, &[])
            }
        });
    }
    Some(match names.resolve(cloud, &q.name).await {
        Ok(Answer::Address(ip)) if matches!(q.qtype, TYPE_A | TYPE_ANY) => {
            answer(header, Some(q), 0, &[(TYPE_A, ip.octets().to_vec())])
        }
        Ok(Answer::Address(_)) => answer(header, Some(q), 0, &[]),
        Ok(Answer::NoSuchName) => answer(header, Some(q), RCODE_NXDOMAIN, &[]),
        Ok(Answer::NotOurs) => answer(header, Some(q), RCODE_REFUSED, &[]),
        Err(e) => {
            tracing::warn!(error = %e, "public DNS: reading addresses failed");
            answer(header, Some(q), RCODE_SERVFAIL, &[])
        }
    })
}

/// TCP connections served at once; more wait to be accepted.
const MAX_TCP_CONNECTIONS: usize = 64;
/// How long a TCP connection may sit idle between queries (RFC 7766
/// suggests seconds, not minutes).
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers queries on `udp` and on connections to `tcp` (the same
/// address) until the task is dropped.
pub async fn serve(cloud: Arc<Cloud>, udp: UdpSocket, tcp: TcpListener) {
    let names = Arc::new(PublicNames::default());
    let tcp_task = tokio::spawn(serve_tcp(cloud.clone(), names.clone(), tcp));
    // Dropping this future (the task aborted) must stop TCP as well.
    let _stop_tcp = AbortOnDrop(tcp_task);
    serve_udp(&cloud, &names, udp).await;
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve_tcp(cloud: Arc<Cloud>, names: Arc<PublicNames>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "public DNS: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (cloud, names) = (cloud.clone(), names.clone());
        connections.spawn(async move {
            if let Err(e) = serve_connection(&cloud, &names, stream).await {
                tracing::debug!(%peer, error = %e, "public DNS: connection ended");
            }
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// Queries on one connection, each framed by a two-byte length, until the
/// client closes it or stays idle.
async fn serve_connection(
    cloud: &Cloud,
    names: &PublicNames,
    mut stream: TcpStream,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; u16::MAX as usize];
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf[..len]))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(reply) = respond(cloud, names, &buf[..len]).await else {
            // Nothing can be answered to bytes that are not a query.
            return Ok(());
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}

async fn serve_udp(cloud: &Cloud, names: &PublicNames, socket: UdpSocket) {
    let mut buf = vec![0u8; 512];
    loop {
        let (n, peer): (usize, SocketAddr) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(error = %e, "public DNS: receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Some(reply) = respond(cloud, names, &buf[..n]).await
            && let Err(e) = socket.send_to(&reply, peer).await
        {
            tracing::debug!(%peer, error = %e, "public DNS: send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend(encode_name(name));
        q.extend(qtype.to_be_bytes());
        q.extend(CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn queries_parse_and_answers_point_at_their_question() {
        let q = query(0x1234, "EC2-198-18-0-23.Mallee-1.compute.mallee.", TYPE_A);
        let (header, question) = parse(&q).expect("parses");
        assert_eq!(header.id, 0x1234);
        assert!(header.recursion_desired);
        assert_eq!(question.name, "ec2-198-18-0-23.mallee-1.compute.mallee");
        let reply = answer(
            header,
            Some(&question),
            0,
            &[(TYPE_A, vec![198, 18, 0, 23])],
        );
        assert_eq!(&reply[..2], &[0x12, 0x34]);
        assert_eq!(reply[2], 0x80 | 0x04 | 0x01, "QR, AA, RD");
        assert_eq!(&reply[6..8], &[0, 1], "one answer");
        assert_eq!(&reply[reply.len() - 4..], &[198, 18, 0, 23]);
        let nx = answer(header, Some(&question), RCODE_NXDOMAIN, &[]);
        assert_eq!(nx[3] & 0x0f, RCODE_NXDOMAIN);
    }

    #[test]
    fn bad_packets_get_formerr_or_nothing() {
        assert_eq!(parse(&[0; 5]), Err(None));
        let mut two = query(1, "a.b", TYPE_A);
        two[5] = 2;
        assert!(matches!(parse(&two), Err(Some((_, RCODE_FORMERR)))));
        let mut truncated = query(1, "abc.def", TYPE_A);
        truncated.truncate(16);
        assert!(matches!(parse(&truncated), Err(Some((_, RCODE_FORMERR)))));
        let mut reply = query(1, "a.b", TYPE_A);
        reply[2] |= 0x80;
        assert_eq!(parse(&reply), Err(None), "answers are never answered");
    }

    #[test]
    fn reverse_names_read_back() {
        assert_eq!(
            reverse_address("23.0.18.198.in-addr.arpa"),
            Some(Ipv4Addr::new(198, 18, 0, 23))
        );
        assert_eq!(reverse_address("0.18.198.in-addr.arpa"), None);
    }
}

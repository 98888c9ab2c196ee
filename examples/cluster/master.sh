#!/bin/sh
# The master's user data: a service on port 50030 that every slave calls
# once it has found the master by name; the master names each caller by a
# reverse lookup and keeps the list in /tmp/slaves.
mkdir -p /www/cgi-bin
cat > /www/cgi-bin/join <<'CGI'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
# busybox httpd listens on IPv6 too: IPv4 callers come as [::ffff:a.b.c.d].
addr=${REMOTE_ADDR#[}
addr=${addr%]}
addr=${addr#::ffff:}
name=$(nslookup "$addr" 2>/dev/null | sed -n 's/.*name = //p' | head -n 1)
echo "$name" >> /tmp/slaves
echo "CLUSTER-JOINED $addr $name" > /dev/console
printf 'Content-Type: text/plain\r\n\r\nwelcome %s\n' "$name"
CGI
chmod 755 /www/cgi-bin/join
: > /tmp/slaves
busybox httpd -p 50030 -h /www
echo "CLUSTER-MASTER-UP $(hostname)"

//! The certorch-inventory(5) man page: the inventory format, kept in one place beside the
//! generator so `man/` stays current with it.

/// roff source of certorch-inventory(5).
pub const PAGE: &str = r#".TH certorch-inventory 5 "" "certorch" "File Formats"
.SH NAME
certorch-inventory \- the host inventory certorch reads
.SH SYNOPSIS
/etc/certorch/inventory.yaml (or \fB\-\-inventory\fR, \fBCERTORCH_INVENTORY\fR)
.SH DESCRIPTION
A YAML document naming the CA, the signing zone certorch may update, how to reach hosts,
and the certificates each host needs. Every value is data: names must be DNS names (A-labels,
never an IP address or a public suffix), paths absolute (never under /proc, /sys or /dev),
users and groups portable names; a bad value is reported as
\fIfile\fR:\fIline\fR:\fIcolumn\fR with what to write instead. Relative file paths are
resolved against the inventory's directory. YAML anchors and merge keys (\fB<<: *name\fR)
may be used to share certificate settings.
.SH TOP-LEVEL KEYS
.TP
\fBacme\fR
\fBdirectory\fR: \fBletsencrypt\fR, \fBletsencrypt\-staging\fR or an https:// directory URL.
\fBcontact\fR: list of mailto: addresses. \fBtrust_root\fR: a PEM root for the CA's own TLS.
\fBeab\fR: \fB{ kid: \fIid\fB, hmac_key_file: \fIpath\fB }\fR for CAs that require external
account binding. \fBstaging\fR: the CA \fBrun \-\-dry\-run\fR uses (default for Let's Encrypt:
letsencrypt\-staging). \fBadopt_issuers\fR: list of PEM files of intermediates (certbot's
chain.pem) whose certificates count as this CA's and are kept until due; without it, a
certificate from an intermediate certorch has not itself received from \fBdirectory\fR is
reissued on the next run (\fBissuer changed\fR). \fBcaa_identities\fR: the domains the CA
recognizes in CAA \fBissue\fR records (RFC 8659), for CAs whose directory does not advertise
\fBmeta.caaIdentities\fR; a name whose CAA records name none of them is refused before any
order. \fBpreferred_chain\fR: the issuer common name of the chain to deploy when the CA offers
alternate chains (the root's CN, like \fBISRG Root X1\fR); when none matches, the default chain
is deployed with a warning.
\fBlimits\fR: the CA's rate limits new orders are scheduled within (default: Let's Encrypt's):
\fBorders_per_window\fR (300) new orders per \fBorders_window\fR (3h),
\fBcerts_per_domain_per_week\fR (50) certificates per registered domain and
\fBduplicates_per_week\fR (5) certificates for the same set of names, each at least 1. What
does not fit is deferred (not a failure) to the time shown; renewals that name the certificate
they replace (ARI) are exempt, as Let's Encrypt exempts them, and count against no budget
later either. Only orders this state recorded are counted. Set lower numbers to leave part
of a shared account's budget to others.
.TP
\fBdns\fR
\fBsigning_zone\fR: the zone certorch writes TXT records into; every
\fB_acme\-challenge.\fIname\fR must be a CNAME into it. \fBresolver\fR: recursive resolver for
CNAME and NS lookups (default: /etc/resolv.conf). \fBttl\fR: TTL of the TXT records (60; 1 to 3600); a different value at a name the CA looked at waits this long, so resolvers' caches expire. \fBmax_rrset_bytes\fR: the largest DNS answer one TXT RRset may make (512); names sharing one CNAME target beyond it are validated in rounds.
\fBpropagation_timeout\fR: how long every authoritative server may take (120s).
\fBrfc2136\fR: \fBserver\fR (ip[:port]), \fBsecret_file\fR (a BIND key file or a bare base64
secret) or \fBsecret_env\fR (an environment variable), \fBkey_name\fR and \fBalgorithm\fR
(hmac\-sha256, hmac\-sha384, hmac\-sha512) when the file holds a bare secret.
Instead of \fBrfc2136\fR: \fBexec\fR: \fB{ command: [\fIprogram\fB, \fIargs\fB...] }\fR gets the
run's batch as JSON on stdin (\fBaction\fR add or remove, \fBttl\fR, \fBrecords\fR of
\fBzone\fR, \fBname\fR, \fBvalue\fR), once per publish and once per withdraw; or
\fBzonefile\fR: \fBhost\fR, \fBaddress\fR, \fBuser\fR, \fBport\fR, \fBpath\fR (the zone file
on that host), \fBtemplate\fR (a bastion file with the SOA carrying \fB{serial}\fR and the NS
records), \fBreload\fR (run there after each rewrite) and \fBserver\fR (where the new serial
must be served); that host is reached with \fBssh.transport\fR; or
\fBpowerdns\fR: PowerDNS Authoritative's HTTP API (\fBapi=yes\fR, \fBwebserver=yes\fR):
\fBapi\fR (the webserver's URL, e.g. http://127.0.0.1:8081; https:// is checked against the
system's roots), \fBserver_id\fR (localhost), \fBapi_key_file\fR (a file holding the
\fBapi\-key\fR of pdns.conf) or \fBapi_key_env\fR (an environment variable), sent as
\fBX\-API\-Key\fR and never printed. Each batch reads the zone once and sends one PATCH per
zone; since a PATCH replaces a whole RRset, certorch merges: values others keep at a name stay,
its own are added or removed exactly (the RRset is deleted when none remain), and the RRset
takes \fBttl\fR. A refused key fails the run before any order (\fBdns.api_refused\fR).
Or \fBroute53\fR: \fBhosted_zone_id\fR (the signing zone's hosted zone, \fBZ\fR...),
\fBendpoint\fR (https://route53.amazonaws.com; http:// only on a loopback address, for a test
server), \fBregion\fR (us\-east\-1, where Route 53 requests are signed), and the access key pair:
\fBaccess_key_id_env\fR (a variable holding the key id) with \fBsecret_access_key_file\fR (the
secret alone in a file) or \fBsecret_access_key_env\fR, or none of the three for
\fBAWS_ACCESS_KEY_ID\fR, \fBAWS_SECRET_ACCESS_KEY\fR and \fBAWS_SESSION_TOKEN\fR. Each publish and
withdraw reads the TXT sets at the batch's names and writes them in one
\fBChangeResourceRecordSets\fR batch (DELETE of the exact set read, CREATE of the merged one, so
values others put there stay and a concurrent change is read again, not overwritten), then waits
for \fBINSYNC\fR; propagation to the name servers is then checked like any publisher's. The key
needs route53:ListResourceRecordSets and route53:ChangeResourceRecordSets on the hosted zone and
route53:GetChange.
.TP
\fBssh\fR
\fBtransport\fR: \fBopenssh\fR (default: the system's ssh client, one multiplexed master
connection per host, honouring ssh_config) or \fBrussh\fR (an SSH client inside certorch: no
ssh process per host). \fBconfig\fR (an ssh_config file; OpenSSH only: with \fBrussh\fR it is
refused, because russh reads no ssh_config and half honouring one would be worse),
\fBknown_hosts\fR, \fBidentity\fR, \fBconnect_timeout\fR (10s: TCP connect, handshake and
login), \fBcommand_timeout\fR (10m: one command on a host, to its exit status),
\fBmax_handshakes\fR (32, at most 1000; russh: handshakes in flight at once),
\fBkex\fR (russh: the key exchanges to offer, in order, by their OpenSSH names, e.g.
\fB[curve25519\-sha256]\fR; default russh's own list, post\-quantum \fBmlkem768x25519\-sha256\fR
first; \fBsntrup761x25519\-sha512\fR and SHA\-1 exchanges are refused; \fBext\-info\-c\fR and strict
key exchange are always added; refused while any host uses OpenSSH, which takes
\fBKexAlgorithms\fR from ssh_config). Host keys are always checked
strictly. With \fBrussh\fR: host keys come from \fBknown_hosts\fR (default
~/.ssh/known_hosts) and /etc/ssh/ssh_known_hosts, with hashed names, \fB[host]:port\fR
entries, \fB*\fR/\fB?\fR patterns and \fB!\fR negation, \fB@cert\-authority\fR (a host
certificate signed by that CA, valid now, naming the host's address or inventory name) and
\fB@revoked\fR; the login tries every key in ssh\-agent (\fBSSH_AUTH_SOCK\fR), then
\fBidentity\fR (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa); encrypted key files only through
the agent. Address, port and user come from the inventory.
.TP
\fBconcurrency\fR
Hosts worked on at once (20; at most 1000).
.TP
\fBdry_run_root\fR
Where \fBrun \-\-dry\-run\fR writes on hosts (/var/tmp/certorch\-dry\-run); each path is moved
under it.
.TP
\fBnotify\fR
\fBon\fR: \fBfailure\fR (default) or \fBalways\fR. \fBwebhook\fR: an https URL (plain http only to
127.0.0.1 or localhost; no user name or password in it) that takes a JSON POST. \fBexec\fR: a command and its arguments as a list, given the same JSON on stdin.
.TP
\fBinternal_ca\fR
\fBtrust_path\fR: where hosts with \fBissuer: internal\fR certificates get the internal CA's
certificate. The CA itself (ECDSA P\-256, ten years) is made on first use and kept in the
state database.
.TP
\fBdefaults\fR
\fBuser\fR, \fBport\fR, \fBkey_type\fR, \fBrenew_before\fR, \fBowner\fR, \fBgroup\fR,
\fBmode\fR, \fBkey_mode\fR, \fBcheck\fR, \fBreload\fR, \fBverify_port\fR,
\fBverify_starttls\fR, \fBplaybook\fR, \fBreuse_key\fR, \fBkeep_previous_key\fR,
\fBadd_host_name\fR, \fBbecome\fR,
\fBprofile\fR, \fBissuer\fR, \fBvalidity\fR, \fBchallenge\fR, \fBwebroot\fR for every host and
certificate.
.TP
\fBhosts\fR
A map from host name to \fBaddress\fR (default: the name), \fBport\fR, \fBuser\fR,
\fBbecome\fR, \fBtransport\fR (\fBopenssh\fR or \fBrussh\fR, overriding \fBssh.transport\fR) and \fBcerts\fR. \fBbecome\fR: \fBsudo\fR or \fBdoas\fR when \fBuser\fR is not
root; every step then runs as \fBsudo \-n \-\- \fR\fIcommand\fR (sudoers:
\fBUSER ALL=(root) NOPASSWD: /bin/sh, /usr/bin/env\fR plus the programs of list\-form
check and reload commands).
.TP
\fBshared\fR
A map from label to \fBhosts\fR (two or more) and \fBcert\fR (a certificate entry): one key and
one certificate for all of them. The key is made on the first listed host that is due and
reachable and copied to the others through the SSH connections (never written on the
bastion); one order; the group renews together, also when its members serve different
certificates (a member whose deploy failed). Selecting one member selects all.
.TP
\fBplaybooks\fR
A directory of the operator's playbooks, \fINAME\fR\fB.yaml\fR, replacing or adding to the
built\-in ones (\fBcertorch playbooks\fR lists them).
.TP
\fBstate\fR
Where the state lives (\fB\-\-state\fR and \fBCERTORCH_STATE\fR win over it): a directory
(SQLite, the default), or a PostgreSQL database that several bastions share,
\fBpostgresql://\fR\fIUSER\fR\fB@\fR\fIHOST\fR\fB:\fR\fIPORT\fR\fB/\fR\fIDB\fR with the
parameters \fBhost\fR (a Unix socket directory), \fBport\fR, \fBuser\fR, \fBdbname\fR,
\fBsslmode\fR (as libpq: \fBdisable\fR, \fBallow\fR, \fBprefer\fR (the default), \fBrequire\fR,
\fBverify\-ca\fR, \fBverify\-full\fR; no TLS over a Unix socket), \fBsslrootcert\fR (a PEM file
of the CAs to trust, or \fBsystem\fR, the default for \fBverify\-ca\fR and \fBverify\-full\fR;
with \fBrequire\fR it makes certorch check the chain), \fBsslcert\fR and \fBsslkey\fR (a client
certificate and its key, PEM), \fBpassword_file\fR (a file holding the password),
\fBconnect_timeout\fR and \fBapplication_name\fR. The password comes from \fBpassword_file\fR,
else the URL, else \fBPGPASSWORD\fR, else libpq's password file (\fBPGPASSFILE\fR or
\fI~/.pgpass\fR, ignored with a warning when others may read it); certorch never prints it. The run lock is then a PostgreSQL advisory lock on
certorch's connection (see \fBcertorch\fR(1)).
.TP
\fBgroups\fR
A map from group name to a list of host names, for \fB\-\-limit\fR and \fBissue\fR.
.SH CERTIFICATES
Each entry under \fBcerts\fR is named by a label and has:
.TP
\fBnames\fR
1 to 100 DNS names; \fB*.\fR wildcards allowed.
.TP
\fBkey_type\fR
\fBecdsa\-p256\fR (default), \fBecdsa\-p384\fR, \fBrsa\-2048\fR, \fBrsa\-3072\fR, \fBrsa\-4096\fR.
.TP
\fBplaybook\fR
A deploy playbook: \fBnginx\fR, \fBapache\fR, \fBhaproxy\fR, \fBpostfix\fR, \fBdovecot\fR,
\fBpkcs12\fR, \fBjava\-keystore\fR, \fBfiles\-only\fR or one of the inventory's own. It sets
the paths (with \fB{label}\fR), check, reload and verify; the certificate's own settings win
over the playbook's, the playbook's over \fBdefaults\fR.
.TP
\fBkey\fR, \fBcert\fR, \fBchain\fR, \fBfullchain\fR
Absolute paths on the host: the private key (made there, never copied), the leaf, the
intermediates, leaf plus intermediates. At least one of \fBcert\fR, \fBfullchain\fR and
\fBcombined\fR. \fB{label}\fR and \fB{host}\fR in a path are replaced.
.TP
\fBpkcs12\fR, \fBkeystore\fR, \fBstore_password_file\fR
A PKCS#12 bundle and a Java keystore (JKS, alias = label) built on the host from its key and
the full chain; the password is read on the host from \fBstore_password_file\fR (required for
a keystore; an empty password for PKCS#12 without it).
.TP
\fBreuse_key\fR
\fBtrue\fR keeps the live key across renewals (pinned keys). Otherwise every certificate gets
a new key, staged beside the live one and swapped in only together with its certificate,
after the host checked that the two match.
.TP
\fBkeep_previous_key\fR
\fBtrue\fR keeps the replaced key (and the combined, PKCS#12 and keystore files that hold it)
as \fI<path>\fB.certorch\-prev\fR. By default those are removed once the new certificate is
live and verified; the previous certificate files are always kept.
.TP
\fBadd_host_name\fR
\fBtrue\fR adds the host's own name to the names, so hosts serving the same names each get a
distinct certificate (Let's Encrypt's duplicate\-certificate limit).
.TP
\fBcombined\fR
The key followed by the full chain in one file (HAProxy, some mail servers), assembled on the
host from the host's own key, with mode \fBkey_mode\fR.
.TP
\fBowner\fR, \fBgroup\fR, \fBmode\fR, \fBkey_mode\fR
Ownership and modes; \fBmode\fR defaults to "0644", \fBkey_mode\fR to "0600" and may never
grant other users access.
.TP
\fBcheck\fR
A command run on the host with the new files in place, before the reload (for example
\fBnginx \-t\fR); if it fails the previous files are put back. A command is a list
(\fB[systemctl, reload, "nginx@{label}"]\fR: each item one argument; placeholders
\fB{label}\fR, \fB{host}\fR, \fB{cn}\fR, \fB{names}\fR (an item that is exactly
\fB{names}\fR becomes one argument per name), \fB{key}\fR, \fB{cert}\fR, \fB{chain}\fR,
\fB{fullchain}\fR, \fB{combined}\fR) or one shell line, which gets the same values as
\fB$CERTORCH_LABEL\fR, \fB$CERTORCH_NAMES\fR, ... in its environment; placeholders in a shell
line are refused.
.TP
\fBreload\fR
A command run on the host after the check, once per distinct command per host.
.TP
\fBverify_port\fR
After the reload, a TLS handshake with SNI to this port must present the new certificate
(three times in a row within 15 seconds); otherwise the previous files are put back and the
service is reloaded with them.
.TP
\fBverify_starttls\fR
\fBsmtp\fR or \fBimap\fR: speak STARTTLS on \fBverify_port\fR before the handshake.
.TP
\fBrenew_before\fR
A share of the lifetime (\fB1/3\fR, \fB0.25\fR) or a time (\fB30d\fR). Default: a third, half
for lifetimes under ten days.
.TP
\fBprofile\fR
The ACME profile to order (for example \fBtlsserver\fR or \fBshortlived\fR).
.TP
\fBchallenge\fR
\fBdns\-01\fR (default) or \fBhttp\-01\fR, which needs \fBwebroot\fR: the directory the
host's web server serves on port 80 for the names. No wildcards with http\-01.
.TP
\fBissuer\fR
\fBacme\fR (default), \fBself\-signed\fR (the host signs its own key) or \fBinternal\fR
(the bastion's internal CA signs the host's CSR). The last two need no DNS and no CA. A
deployed certificate from another issuer than this one (or, for \fBacme\fR, from another
directory) is replaced on the next run.
.TP
\fBvalidity\fR
Lifetime of self\-signed and internal certificates (90d).
.SH EXAMPLE
.nf
acme:
  directory: letsencrypt
  contact: [mailto:ops@example.org]
dns:
  signing_zone: acme.example.net
  rfc2136: { server: 192.0.2.53:53, secret_file: /etc/certorch/tsig.key }
hosts:
  web1.example.org:
    address: 192.0.2.10
    certs:
      www:
        names: [www.example.org, example.org]
        key: /etc/ssl/private/www.key
        fullchain: /etc/ssl/certs/www.pem
        reload: systemctl reload nginx
.fi
.SH SEE ALSO
\fBcertorch\fR(1)
"#;

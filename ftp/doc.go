// Package ftp is sluice's FTP protocol engine: one Session per control
// connection, speaking RFC 959 with the extensions of RFC 2389 (FEAT/OPTS),
// RFC 2428 (EPRT/EPSV), RFC 3659 (SIZE, MDTM, REST STREAM, MLST/MLSD) and
// RFC 2640 (UTF-8 path names), plus MFMT and CLNT.
//
// The package is the pure protocol layer: it parses, normalises paths,
// decides and replies. Files are reached only through the FileSystem of the
// logged-in Account (datapath.Tree in production, which confines every path
// in the kernel), bytes are moved by datapath's movers, and no raw syscalls
// are made here.
//
// # Structure
//
// A reader goroutine turns the control stream into command lines (telnet.go:
// Telnet commands removed, CRLF or LF, 4096-byte limit). Serve's loop
// handles them one at a time; a data transfer runs in a goroutine of its own
// so that, while it runs, ABOR aborts it, STAT reports progress and NOOP is
// answered, and every other command is queued and handled, in order, after
// the transfer's final reply. Only the loop writes replies.
//
// Paths are normalised once, by cleanPath, into clean absolute virtual
// paths; a ".." that would climb above "/" is refused, not clamped. Errors
// become replies in one place, replyForErr.
//
// # Choices where the RFCs leave room
//
//   - REST with a non-zero offset is refused in TYPE A (501): stored and
//     wire offsets differ and clients disagree on which they mean.
//   - REST beyond the end of the file is refused with 554 (RFC 3659 section
//     5.4) for RETR and for STOR; STOR after REST n keeps the first n bytes
//     and writes from there. APPE ignores REST.
//   - NLST without argument lists bare names; with a directory argument the
//     names are prefixed with it, so each line works as a RETR argument.
//   - LIST is in `ls -l` form with owner and group "ftp", UTC times.
//     Symlinks are listed as what they resolve to; links that do not resolve
//     inside the tree, and names containing CR or LF, are left out.
//   - MLSD omits the optional cdir/pdir entries; modify facts carry whole
//     seconds (several client parsers reject fractions).
//   - A transfer command without PASV/EPSV/PORT/EPRT gets 425: the RFC 959
//     default data port is not offered. Each setup serves one transfer.
//   - NOOP during a transfer is answered at once (keep-alive clients wait for
//     it); a strictly pipelining client should not send NOOP mid-transfer.
//   - If the control connection drops during an upload, the upload is
//     allowed to finish (bounded by DataTimeout stalls); a download is
//     aborted.
package ftp

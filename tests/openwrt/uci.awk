# A small UCI file parser for the tests: turns /etc/config/NAME syntax into
# the `config TYPE [NAME]`, `option NAME VALUE` and `list NAME VALUE` calls
# that `uci export` output drives in /lib/functions.sh, every argument
# single-quoted for sh. Handles 'single', "double" (with \ escapes) and bare
# words, comments and blank lines; anything else is an error.

function shq(s) {
	gsub(/'/, "'\\''", s)
	return "'" s "'"
}

function tokenize(line,    n, i, c, tok, inq, have, len) {
	n = 0; tok = ""; inq = ""; have = 0; len = length(line)
	for (i = 1; i <= len; i++) {
		c = substr(line, i, 1)
		if (inq == "'") {
			if (c == "'") inq = ""; else tok = tok c
			continue
		}
		if (inq == "\"") {
			if (c == "\\" && i < len) { i++; tok = tok substr(line, i, 1); continue }
			if (c == "\"") inq = ""; else tok = tok c
			continue
		}
		if (c == "'" || c == "\"") { inq = c; have = 1; continue }
		if (c == " " || c == "\t") {
			if (have) { tokens[++n] = tok; tok = ""; have = 0 }
			continue
		}
		if (c == "#" && !have) break
		if (c == "\\" && i < len) { i++; c = substr(line, i, 1) }
		tok = tok c; have = 1
	}
	if (inq != "") {
		printf "uci.awk: %s:%d: unterminated quote\n", FILENAME, FNR > "/dev/stderr"
		exit 1
	}
	if (have) tokens[++n] = tok
	return n
}

{
	n = tokenize($0)
	if (n == 0 || tokens[1] == "package") next
	if (tokens[1] == "config" && (n == 2 || n == 3)) {
		print "config " shq(tokens[2]) (n == 3 ? " " shq(tokens[3]) : "")
		next
	}
	if ((tokens[1] == "option" || tokens[1] == "list") && n == 3) {
		print tokens[1] " " shq(tokens[2]) " " shq(tokens[3])
		next
	}
	printf "uci.awk: %s:%d: cannot parse: %s\n", FILENAME, FNR, $0 > "/dev/stderr"
	exit 1
}

# NAME.gz: NAME compressed; --rsyncable keeps small changes local in the
# output, -n keeps the name and time out, so equal inputs give equal bytes.
redo-ifchange "$2"
if gzip --rsyncable -c </dev/null >/dev/null 2>&1; then
	gzip --rsyncable -n -c <"$2"
else
	gzip -n -c <"$2"
fi

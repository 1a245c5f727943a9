"""Open311 GeoReport v2 on our tickets (no HTTP here; bot/web/views/open311.py serves it).

Specification: http://wiki.open311.org/GeoReport_v2 (XML and JSON; one
jurisdiction, so `jurisdiction_id` is ignored as the specification allows).
Choices where the specification leaves room, all documented here:

- Formats: every resource answers `.xml` and `.json`, both rendered from the
  same answer (bot.open311.answers): XML has the specification's element
  names, a `None` field is an empty element, booleans are true/false,
  characters XML cannot carry become U+FFFD. Other extensions are 404; errors
  come in the requested format. POST bodies may be form-encoded (the
  specification), a JSON object or an XML document whose root's children are
  the fields (extensions); a malformed one is 400. `tokens/{id}` is not
  served: every service is realtime, so no POST answers a token.
- Services are the categories of taxonomy.yml (not the internal HANDOFF
  call-back requests, which are not listed, accepted or shown). `metadata` is
  false for all of them; `GET services/{code}.json` of a listed service
  answers 200 with an empty `attributes` list (the definition exists and is
  empty), an unlisted code 404.
- `service_request_id` is the ticket number residents and workers see
  ("20261127-0007"), a string.
- Status: open/accepted/escalated -> "open"; resolved/closed/cancelled ->
  "closed". `status_notes` is the latest note of a handler,
  a city system's request update included (routing notes and the submitter's
  contact details are left out).
- Times are ISO 8601 in local time with the offset (2026-11-27T10:00:00+08:00);
  `expected_datetime` is the ticket's deadline.
- `address` is community + building + unit (the room is left out: requests
  are public and a room pins down a household); `lat`/`long` only when known;
  `media_url` is the ticket's first public photo, a
  staff member's, served at /open311/v2/media/{id}.{ext} (bot.open311.media;
  residents' photos are never public), else the http(s) URL another system
  posted with the request; `address_id` and `zipcode` are null.
- Extension fields on every request: `grid_code`, `community`, `level`
  (grid/community/street) and `channel` (wechat, open311 ...).
- GET requests: `service_request_id` (comma-separated) overrides every other
  argument; `service_code` and `status` take comma-separated lists;
  `start_date`/`end_date` are W3C dates (a date alone means local midnight,
  or the end of that day for `end_date`; a time needs a zone) and may not span
  more than 90 days; with one of them the window is the 90 days after the
  start or before the end, with none the last 90 days. Newest first, at most
  1,000; `page`/`page_size` (extension, page_size <= 1,000) page further.
  An unknown service_code in a filter matches nothing (no error).
- POST: the key comes as `api_key` (form, JSON body or query string). A
  missing, unknown or revoked key is 403. Problems with the fields are 400,
  all listed at once; an unknown service_code alone is 404 (with other
  problems it is listed among them, and the answer is 400). Location: lat +
  long, address_string or address_id (a grid code, else read as an address).
  A building found in the address wins over a polygon hit of lat/long, which
  wins over a community-only address; an address nobody can place still opens
  a ticket, which the office sorts out (as chat tickets do after the resident
  could not give one). Contact fields go into a note on the ticket, never
  into the public description. An `Idempotency-Key` header (or an
  `idempotency_key` field, extension) makes a retried POST return the same
  ticket.

The package, by resource (as FixMyStreet's Open311 endpoint):
- bot.open311.mapping   how tickets map onto Open311: statuses, public categories, times
- bot.open311.answers   the answer forms: the error list, JSON and XML renderings
- bot.open311.discovery GET /open311/discovery.json and .xml
- bot.open311.parsing   reading arguments and fields (GET filters, POST fields, W3C dates)
- bot.open311.services  GET services.json, services/{code}.json
- bot.open311.requests  GET requests.json, requests/{id}.json
- bot.open311.submit    POST requests.json
- bot.open311.updates   GET and POST servicerequestupdates (mySociety's extension)
- bot.open311.media     media_url: the public photos and their files
"""

// Package elasticsearch is Ferry's Elasticsearch sink: it writes event
// batches into data streams named {type}-{dataset}-{namespace} with the bulk
// API and reports per event what happened.
//
// # Delivery
//
// Every event becomes a bulk "create" with _id = event.IDString(id), so a
// re-send of an event already indexed answers 409 and counts as delivered:
// retries never duplicate (within one backing index of the data stream).
// Per item:
//
//   - 2xx, or 409 version_conflict_engine_exception: delivered;
//   - 429, 5xx (and 401/403, which are about credentials, not about the
//     document): retried alone, with exponential backoff and jitter, until
//     the Write's context ends; then reported in Result.Failed as retryable;
//   - any other 4xx (mapping conflicts, unparsable documents): written to the
//     dead-letter data stream with the error and the original document, and
//     counted DeadLettered. If that write fails the event is Failed; it is
//     never dropped silently.
//
// A request that fails as a whole (connection refused, timeout, 429 or 5xx
// for the request) is retried with backoff while the Write's context allows;
// then Write returns an error and the caller must treat the batch as not
// delivered.
//
// Items counts the items by what Elasticsearch answered (created,
// duplicate, retried, dead-lettered, dropped), which the aggregator exports
// as ferry_aggregator_elasticsearch_items_total{sink,result}.
//
// # Batching
//
// Writes hand their documents to one background flusher that packs items of
// concurrent Writes into bulk requests, with at most MaxConcurrentRequests
// requests in flight. A request goes out when FlushBytes or FlushEvents is
// reached; else as soon as every Write in progress waits on the items the
// flusher holds (none is still preparing its items, none are queued) and a
// request slot is free; FlushInterval after its first item at the latest.
// Writes that overlap share a request, and while every slot is busy the
// next request grows: bulks are as large as the load makes them, without
// waiting out an interval when nothing more can come.
//
// Each event's bulk lines (action line and document) are rendered once, by
// its Write, into that Write's pooled buffer; a request body is the list of
// its items' lines, a run of one Write's items that follow each other in
// its buffer being one segment sent from there, without a copy (short runs
// and dead-letter items are copied into the body's own buffer). The body is
// sent chunked, a chunk per segment. A Write's buffer goes back to its pool
// once its items are all resolved and every request body using it is
// released (the transport may still read a body after its answer, see
// reqBody): a retried item is sent again from the same bytes. An answer
// without errors is checked for its number of items and not decoded
// further, and in one with errors only the refused items are (see
// parseBulk). Answers are asked for uncompressed: on the way from
// a cluster to its aggregator the CPU to gzip and gunzip them costs more
// than their bytes. esutil.BulkIndexer is not used:
// it reports items through callbacks without retrying only the failed ones,
// and a Write here must block on the outcome of exactly its own items.
//
// # Templates
//
// Setup installs the component templates ferry-ecs-mappings and
// ferry-settings and the index templates ferry-logs, ferry-logs-haproxy and
// ferry-metrics
// (priority 250, matching only Ferry's own datasets, never plain logs-*).
// ferry-metrics (metrics-system.*, metrics-kubernetes*, metrics-node-*) also
// composes ferry-metrics-mappings, which types every metric field, and makes
// time-series data streams where the cluster has them (metric events are
// then written without _id: see templates_metrics.go). ferry-logs-haproxy
// (logs-haproxy*) composes ferry-haproxy-mappings, which types every field
// of a parsed HAProxy request log (templates_haproxy.go).
// Mapping types this cluster lacks (match_only_text, constant_keyword in
// minimal distributions) fall back to text and keyword, and data stream
// lifecycle (Retention) is dropped with one log line where unsupported.
// Before the first write to each data stream (and in Setup for the
// dead-letter one) the sink asks Elasticsearch which template applies
// (checkStream): a dataset no template matches gets a Ferry template of its
// own, and a data stream another template governs is refused or warned
// about (Config.TemplateConflict).
//
// # Outages
//
// The first failed attempt, or a request unanswered for 10 s, is a warning
// at once; then one warning a minute counts the attempts since; the first
// success after that logs how long delivery failed (see outage).
//
// Liveness uses GET /_cluster/health: some distributions answer GET / with
// 405.
package elasticsearch

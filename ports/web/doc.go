// Package web is the page a data product's management port serves under
// /ui/: a product card (manifest, ports and schema versions, the ODCS
// contract, live SLOs and quality counters, recent dead letters, the
// change log and its latest signed checkpoint), the mesh with its lineage
// graph, and an entity explorer with each entity's bitemporal chart, an
// as-of slider and the corrections between two system times.
//
// The page is one HTML file, one stylesheet and one script, hand-written,
// embedded in the binary with go:embed: nothing is fetched from another
// host at run time, and a Content-Security-Policy says so to the browser.
// It holds no data. Every view asks the same JSON routes the CLI and other
// clients use (ports/mgmt, ports/query, ports/mesh), with the bearer token
// typed into its sign-in field, so a role sees here exactly what its token
// may read: a consumer's page never asks for history, and the server would
// refuse it if it did. The token is kept in the tab's sessionStorage only.
//
// Large products stay responsive because the server filters and pages:
// the entity search asks /v1/entities?q=&after=&limit= for one page of
// keys at a time, and a chart draws at most the first 2,000 versions of a
// key (history?limit=), saying so when there are more.
//
// The browser test (browser_test.go) runs the page in Chromium against a
// `meshlet dev` product; see its doc comment.
package web

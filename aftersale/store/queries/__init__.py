"""The store's queries written once for both backends: one mixin per aggregate over
`aftersale.store.backend.Backend`, its statements spelled with the backend's `Dialect`.
What a backend does its own way (bulk paths, leases) lives in its folder."""

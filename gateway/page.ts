/** The chat page served at `/` to browsers (filled in with the full UI later). */
export const PAGE_HTML = `<!doctype html><html><head><meta charset="utf-8"><title>gemello</title></head><body><h1>gemello</h1><p>Connect a WebSocket to this address.</p></body></html>`;

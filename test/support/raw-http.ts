/**
 * An HTTP server written on raw TCP (node:net), for API faults no real server produces on purpose: it
 * accepts every connection, reads each request's head, and either writes the answer the test gives for
 * it or never answers at all, holding the connection open until the test closes the server.
 */
import {createServer, type Socket} from 'node:net'

export interface RawRequest {
  method: string
  /** Path and query, as sent. */
  target: string
}

/** A whole HTTP response (status line, headers, body); `{hold}` to write that much and then hold the connection open; undefined to never answer. */
export type RawAnswer = (request: RawRequest) => string | {hold: string} | undefined

export interface RawHttpServer {
  url: string
  /** `METHOD target` of every request head received, in order. */
  readonly requests: string[]
  /** Connections still open. */
  openConnections(): number
  /** Destroys every connection and stops listening. */
  close(): Promise<void>
}

/** Starts a raw server on 127.0.0.1; `answer` decides per request. Connections are never reused after an answer. */
export async function startRawHttpServer(answer: RawAnswer): Promise<RawHttpServer> {
  const sockets = new Set<Socket>()
  const requests: string[] = []
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return
      head += chunk.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      const [method = '', target = ''] = head.slice(0, head.indexOf('\r\n')).split(' ')
      requests.push(`${method} ${target}`)
      const response = answer({method, target})
      if (typeof response === 'string') socket.end(response)
      else if (response !== undefined) socket.write(response.hold)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as {port: number}
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    openConnections: () => sockets.size,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
}

/** A complete JSON response with `Connection: close`. */
export function jsonResponse(status: number, body: unknown): string {
  const text = JSON.stringify(body)
  return `HTTP/1.1 ${status} ${status === 200 ? 'OK' : 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`
}

/** A watch stream that opens (200, chunked) and never sends an event nor ends. */
export const SILENT_WATCH = {hold: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'}

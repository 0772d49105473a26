/** Lists a whole collection in pages (limit + continue), as one consistent snapshot at one resourceVersion. */
import {isGone} from './errors.js'
import type {ListPage, WatchedKind, WireObject} from './kinds.js'
import {cachedObject} from './trim.js'

export const DEFAULT_PAGE_SIZE = 500

/** Every item of the kind's collection and the resourceVersion to watch from. */
export async function listAll(kind: WatchedKind, pageSize = DEFAULT_PAGE_SIZE): Promise<{items: WireObject[]; resourceVersion: string}> {
  const items: WireObject[] = []
  // Slimmed page by page, so that what smartnat never reads is dropped while the list goes on.
  const keep = (page: ListPage) => {
    for (const item of page.items) items.push(cachedObject(kind, item))
  }
  let page: ListPage = await kind.listPage({limit: pageSize})
  keep(page)
  while (page.continue !== undefined) {
    try {
      page = await kind.listPage({limit: pageSize, continue: page.continue})
    } catch (error) {
      // The continue token outlived the server's history: the pages so far are no longer one snapshot,
      // so take the whole collection again in one response, as client-go's pager does.
      if (!isGone(error)) throw error
      page = await kind.listPage({})
      items.length = 0
    }
    keep(page)
  }
  return {items, resourceVersion: page.resourceVersion}
}

/**
 * Values by a Kubernetes object's namespace, then name, each kept under the strings it was given: names
 * are not validated, and "a/b" + "c" must not collide with "a" + "b/c", which a `namespace/name` key would.
 */

/** Values by namespace, then name. */
export class NameMap<T> {
  private readonly byNamespace = new Map<string, Map<string, T>>()

  get(namespace: string, name: string): T | undefined {
    return this.byNamespace.get(namespace)?.get(name)
  }

  set(namespace: string, name: string, value: T): void {
    const names = this.byNamespace.get(namespace) ?? new Map<string, T>()
    this.byNamespace.set(namespace, names)
    names.set(name, value)
  }

  delete(namespace: string, name: string): void {
    const names = this.byNamespace.get(namespace)
    names?.delete(name)
    if (names?.size === 0) this.byNamespace.delete(namespace)
  }

  *keys(): Iterable<[string, string]> {
    for (const [namespace, names] of this.byNamespace) for (const name of names.keys()) yield [namespace, name]
  }
}

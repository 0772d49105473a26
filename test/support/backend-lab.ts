/** The lab and manifest folder a backend's end-to-end suite syncs into, built in its before hook and removed in its after hook. */
import {requireBackend, type LabBackend} from './backends.js'
import {createLab, requireLab, type Lab, type LabOptions} from './lab.js'
import {ManifestDir} from './mappings.js'

export interface BackendLab {
  lab: Lab
  dir: ManifestDir
}

/** In a before hook: requireLab and requireBackend, then a lab and an empty manifest folder; a failed build leaves nothing behind. */
export async function createBackendLab(context: Mocha.Context, backend: LabBackend, options: LabOptions = {}): Promise<BackendLab> {
  requireLab(context)
  requireBackend(context, backend)
  const dir = await ManifestDir.create()
  try {
    return {lab: await createLab(options), dir}
  } catch (error) {
    await dir.remove()
    throw error
  }
}

/** In an after hook: removes what createBackendLab built (either is missing when the before hook failed or the suite was skipped). */
export async function removeBackendLab(lab: Lab | undefined, dir: ManifestDir | undefined): Promise<void> {
  await lab?.destroy()
  await dir?.remove()
}

/** What a command needs to tell failures apart and word them: each ends the command with its own exit code. */
export {MappingNotFoundError} from '../explain/mapping.js'
export {errorChain, errorText} from '../observe/log.js'
export {MassRemovalError} from '../sync/guard.js'
